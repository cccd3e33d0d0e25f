// compose-check loads compose files with compose-go, the loader behind `docker compose config`
// (schema validation, interpolation, normalisation, merging of several -f files), and exits 1
// on any error. Tests use it where the docker CLI compose plugin is not installed; no Docker
// engine is needed either way.
//
//	compose-check FILE [FILE...]          "ok: N services"
//	compose-check -json FILE [FILE...]    the merged project as JSON (`docker compose config --format json`)
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/compose-spec/compose-go/v2/cli"
)

func main() {
	files, asJSON := os.Args[1:], false
	if len(files) > 0 && files[0] == "-json" {
		files, asJSON = files[1:], true
	}
	opts, err := cli.NewProjectOptions(files, cli.WithOsEnv, cli.WithDotEnv, cli.WithName("runledger"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	project, err := opts.LoadProject(context.Background())
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if asJSON {
		out, err := project.MarshalJSON()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Println(string(out))
		return
	}
	fmt.Printf("ok: %d services\n", len(project.Services))
}
