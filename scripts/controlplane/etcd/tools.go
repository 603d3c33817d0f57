//go:build tools

// Package tools records the commands built from this module (see build.sh).
package tools

import (
	_ "go.etcd.io/etcd/server/v3"
)
