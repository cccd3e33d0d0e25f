// compose-check loads a compose file with compose-go, the loader behind `docker compose config`
// (schema validation, interpolation, normalisation), and exits 1 on any error. Tests use it
// where the docker CLI compose plugin is not installed; no Docker engine is needed either way.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/compose-spec/compose-go/v2/cli"
)

func main() {
	opts, err := cli.NewProjectOptions(os.Args[1:], cli.WithOsEnv, cli.WithDotEnv, cli.WithName("runledger"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	project, err := opts.LoadProject(context.Background())
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Printf("ok: %d services\n", len(project.Services))
}
