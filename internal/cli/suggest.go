package cli

import (
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
)

// outerCommands are the commands cmd/sluice runs itself, for suggestions.
var outerCommands = []string{"serve", "bench", "version", "help"}

// unknownCommand answers a line that names no command: the group's
// subcommands (exit 0 when help was asked for), or a suggestion for a typo.
func unknownCommand(cmds map[string]*command, args []string, stdout, stderr io.Writer) int {
	if group := groupHelp(cmds, args[0]); group != "" {
		if len(args) > 1 && (args[1] == "--help" || args[1] == "-h" || args[1] == "help") {
			fmt.Fprintf(stdout, "Usage: sluice %s <subcommand> [flags]\n\n%s", args[0], group)
			return ExitOK
		}
		fmt.Fprintf(stderr, "sluice %s: want a subcommand:\n%s", args[0], group)
		if len(args) > 1 {
			var subs []string
			for name := range cmds {
				if sub, ok := strings.CutPrefix(name, args[0]+" "); ok {
					subs = append(subs, sub)
				}
			}
			if s := closest(args[1], subs); s != "" {
				fmt.Fprintf(stderr, "did you mean: sluice %s %s?\n", args[0], s)
			}
		}
		return ExitUsage
	}
	fmt.Fprintf(stderr, "sluice: unknown command %q\n", strings.Join(args[:min(2, len(args))], " "))
	names := slices.Clone(outerCommands)
	for name := range cmds {
		names = append(names, firstWord(name))
	}
	if s := closest(args[0], names); s != "" {
		fmt.Fprintf(stderr, "did you mean: sluice %s?\n", s)
	} else {
		fmt.Fprintf(stderr, "\n%s", usage)
	}
	return ExitUsage
}

// suggestFlag adds a suggestion to the flag package's "flag provided but
// not defined" error.
func suggestFlag(fs *flag.FlagSet, err error, w io.Writer) {
	name, ok := strings.CutPrefix(err.Error(), "flag provided but not defined: -")
	if !ok {
		return
	}
	var names []string
	fs.VisitAll(func(f *flag.Flag) { names = append(names, f.Name) })
	if s := closest(strings.TrimLeft(name, "-"), names); s != "" {
		fmt.Fprintf(w, "did you mean --%s?\n", s)
	}
}

// closest returns the candidate nearest to word, if near enough to be a
// typo of it: at most a third of its letters wrong (at least one).
func closest(word string, candidates []string) string {
	best, bestD := "", max(1, len(word)/3)+1
	slices.Sort(candidates)
	for _, c := range candidates {
		if d := editDistance(word, c); d < bestD {
			best, bestD = c, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance, transpositions counting one.
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev2 := make([]int, len(rb)+1)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(rb)]
}
