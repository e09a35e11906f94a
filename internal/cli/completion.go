package cli

import (
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
)

// Shell completion: `sluice completion bash|zsh` prints a script that
// completes command names, subcommands and each command's flags, made
// from the same command table the CLI runs.

func completionCommand() *command {
	return &command{
		usage: "completion SHELL",
		help: `Print a completion script for bash or zsh. Load it with
  source <(sluice completion bash)     (in ~/.bashrc)
  source <(sluice completion zsh)      (in ~/.zshrc, after compinit)`,
		run: func(e *env, a []string) error {
			if len(a) != 1 {
				return usagef("want bash or zsh")
			}
			switch a[0] {
			case "bash":
				writeBash(e.stdout, completionTable())
			case "zsh":
				writeZsh(e.stdout, completionTable())
			default:
				return usagef("shell %q: want bash or zsh", a[0])
			}
			return nil
		},
	}
}

// completions is what a shell completes: the first words, the second
// words of each group, and the flags of each command ("queue ls", "bind").
type completions struct {
	first []string
	subs  map[string][]string
	flags map[string][]string
}

func completionTable() completions {
	c := completions{subs: map[string][]string{}, flags: map[string][]string{}}
	c.first = slices.Clone(outerCommands)
	for name, cmd := range commands() {
		group, sub, grouped := strings.Cut(name, " ")
		if !slices.Contains(c.first, group) {
			c.first = append(c.first, group)
		}
		if grouped {
			c.subs[group] = append(c.subs[group], sub)
		}
		fs := flag.NewFlagSet(name, flag.ContinueOnError)
		globalFlags(fs, &env{})
		if cmd.flags != nil {
			cmd.flags(fs)
		}
		fs.VisitAll(func(f *flag.Flag) { c.flags[name] = append(c.flags[name], "--"+f.Name) })
	}
	slices.Sort(c.first)
	for _, v := range c.subs {
		slices.Sort(v)
	}
	return c
}

func writeBash(w io.Writer, c completions) {
	fmt.Fprintf(w, `# bash completion for sluice; load with: source <(sluice completion bash)
_sluice() {
  local cur="${COMP_WORDS[COMP_CWORD]}"
  local words="" flags=""
  if [[ $COMP_CWORD -eq 1 ]]; then
    words=%q
  elif [[ $COMP_CWORD -eq 2 ]]; then
    case "${COMP_WORDS[1]}" in
`, strings.Join(c.first, " "))
	for _, g := range sortedKeys(c.subs) {
		fmt.Fprintf(w, "      %s) words=%q ;;\n", g, strings.Join(c.subs[g], " "))
	}
	fmt.Fprint(w, `    esac
  fi
  if [[ $cur == -* ]]; then
    case "${COMP_WORDS[1]} ${COMP_WORDS[2]}" in
`)
	for _, name := range sortedKeys(c.flags) {
		fmt.Fprintf(w, "      %s) flags=%q ;;\n", casePattern(name), strings.Join(c.flags[name], " "))
	}
	fmt.Fprint(w, `    esac
    words="$flags"
  fi
  COMPREPLY=($(compgen -W "$words" -- "$cur"))
}
complete -F _sluice sluice
`)
}

func writeZsh(w io.Writer, c completions) {
	fmt.Fprintf(w, `#compdef sluice
# zsh completion for sluice; load with: source <(sluice completion zsh)
_sluice() {
  if (( CURRENT == 2 )); then
    compadd -- %s
    return
  fi
  if (( CURRENT == 3 )) && [[ $words[CURRENT] != -* ]]; then
    case $words[2] in
`, strings.Join(c.first, " "))
	for _, g := range sortedKeys(c.subs) {
		fmt.Fprintf(w, "      %s) compadd -- %s; return ;;\n", g, strings.Join(c.subs[g], " "))
	}
	fmt.Fprint(w, `    esac
  fi
  if [[ $words[CURRENT] == -* ]]; then
    case "$words[2] $words[3]" in
`)
	for _, name := range sortedKeys(c.flags) {
		fmt.Fprintf(w, "      %s) compadd -- %s ;;\n", casePattern(name), strings.Join(c.flags[name], " "))
	}
	fmt.Fprint(w, `    esac
  fi
}
compdef _sluice sluice
`)
}

// casePattern matches "group sub" exactly, and a one-word command followed
// by anything (its positional arguments).
func casePattern(name string) string {
	if strings.Contains(name, " ") {
		return fmt.Sprintf("%q", name)
	}
	return fmt.Sprintf("%q*", name+" ")
}
