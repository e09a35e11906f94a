// Package console holds Sluice's web console: HTML, CSS and ES modules
// embedded in the binary, with no build step and nothing fetched from
// elsewhere at run time. package httpapi serves them at / beside /api;
// every page is the same shell (index.html), whose module (app.js) reads
// the URL and draws the page from the API.
//
// The package has no goroutines and no state beyond the embedded files;
// it is safe for concurrent use.
package console

import (
	"embed"
	"io/fs"
	"net/http"
)

//go:embed static
var static embed.FS

// Pages are the ServeMux patterns (after the method) of the console's
// pages; each answers with Shell.
var Pages = []string{
	"/{$}",
	"/queues",
	"/queues/{rest...}",
	"/dead-letters",
	"/exchanges",
	"/connections",
	"/users",
}

// Files serves the embedded files under /static/.
func Files() http.Handler {
	sub, err := fs.Sub(static, "static")
	if err != nil {
		panic(err) // the directory is embedded above
	}
	return http.StripPrefix("/static/", http.FileServerFS(sub))
}

// Shell is the page every console URL answers with.
func Shell() []byte { return mustRead("static/index.html") }

// Login is the sign-in page.
func Login() []byte { return mustRead("static/login.html") }

func mustRead(name string) []byte {
	b, err := static.ReadFile(name)
	if err != nil {
		panic(err) // embedded above
	}
	return b
}
