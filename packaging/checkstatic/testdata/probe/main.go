// Command probe imports the standard packages that link C libraries when
// cgo is on (net's resolver, os/user), so that building it with the
// release flags shows whether they make a static binary. It prints the
// version the build stamped.
package main

import (
	"fmt"
	"net"
	"net/http"
	"os/user"
)

var version = "unset"

func main() {
	_, _ = net.LookupHost("localhost")
	_, _ = user.Current()
	_ = http.DefaultClient
	fmt.Println(version)
}
