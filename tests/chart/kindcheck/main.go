// Command kindcheck loads kind cluster configs with kind's own loader and validator: the
// strict YAML decoding of kind.x-k8s.io/v1alpha4 (unknown fields are errors), kind's
// defaults, and the same validation `kind create cluster --config` runs before it creates
// anything. It needs no Docker.
//
// The module path sits under sigs.k8s.io/kind/pkg/ so that Go's internal-package rule lets it
// import kind's internal config packages; the kind version is pinned in go.mod.
//
//	go run . FILE...   # prints one line per file; exit status 1 if any is invalid
package main

import (
	"fmt"
	"os"

	"sigs.k8s.io/kind/pkg/internal/apis/config/encoding"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: kindcheck FILE...")
		os.Exit(2)
	}
	failed := false
	for _, path := range os.Args[1:] {
		cfg, err := encoding.Load(path)
		if err == nil {
			if cfg.Name == "" {
				cfg.Name = "kind" // what `kind create cluster` uses without --name or a name in the file
			}
			err = cfg.Validate()
		}
		if err != nil {
			failed = true
			fmt.Printf("%s: INVALID: %v\n", path, err)
			continue
		}
		roles := map[string]int{}
		for _, n := range cfg.Nodes {
			roles[string(n.Role)]++
		}
		fmt.Printf("%s: valid kind config: cluster %q, nodes %v, image %s\n", path, cfg.Name, roles, cfg.Nodes[0].Image)
	}
	if failed {
		os.Exit(1)
	}
}
