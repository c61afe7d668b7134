//go:build ignore

// Writes the goldens in cases/: for each cases/NAME.yaml, what Helm's values reader yields
// (sigs.k8s.io/yaml.Unmarshal into map[string]interface{}, as chartutil.ReadValues does),
// as JSON in NAME.helm.json, or Helm's error text in NAME.helm-error.txt.
//
// With -manifest first, it writes what Helm sends Kubernetes for the same text read as a
// rendered manifest instead (sigs.k8s.io/yaml.YAMLToJSON, as Helm's kube client reads each
// document; integers stay integers): the exact JSON in NAME.manifest.json, or the error in
// NAME.manifest-error.txt.
//
// Made with sigs.k8s.io/yaml v1.4.0 (go-yaml v2.4 inside), the reader Helm 3 uses:
//
//	git clone --branch v1.4.0 https://github.com/kubernetes-sigs/yaml /tmp/sigs-yaml
//	mkdir /tmp/sigs-yaml/cmd && cp oracle.go /tmp/sigs-yaml/cmd/main.go  # then drop the build tag line
//	(cd /tmp/sigs-yaml && go build -o /tmp/values-oracle ./cmd)
//	/tmp/values-oracle cases/*.yaml
//	/tmp/values-oracle -manifest cases/*.yaml
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"

	"sigs.k8s.io/yaml"
)

func main() {
	paths := os.Args[1:]
	if len(paths) > 0 && paths[0] == "-manifest" {
		manifests(paths[1:])
		return
	}
	for _, path := range paths {
		base := strings.TrimSuffix(path, ".yaml")
		os.Remove(base + ".helm.json")
		os.Remove(base + ".helm-error.txt")
		in, err := os.ReadFile(path)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		var v map[string]interface{}
		err = yaml.Unmarshal(in, &v)
		var out []byte
		if err == nil {
			out, err = json.MarshalIndent(v, "", "  ")
		}
		if err != nil {
			os.WriteFile(base+".helm-error.txt", []byte(err.Error()+"\n"), 0644)
			continue
		}
		os.WriteFile(base+".helm.json", append(out, '\n'), 0644)
	}
}

func manifests(paths []string) {
	for _, path := range paths {
		base := strings.TrimSuffix(path, ".yaml")
		os.Remove(base + ".manifest.json")
		os.Remove(base + ".manifest-error.txt")
		in, err := os.ReadFile(path)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		out, err := yaml.YAMLToJSON(in)
		if err != nil {
			os.WriteFile(base+".manifest-error.txt", []byte(err.Error()+"\n"), 0644)
			continue
		}
		os.WriteFile(base+".manifest.json", append(out, '\n'), 0644)
	}
}
