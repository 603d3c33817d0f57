//go:build tools

// Package tools records the commands built from this module (see build.sh).
package tools

import (
	_ "helm.sh/helm/v3/cmd/helm"
)
