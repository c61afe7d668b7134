package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"

	"sigs.k8s.io/yaml"
)

// Each input line: {"mode":"marshal","v":<json>} or {"mode":"unmarshal","v":"<yaml text>"}.
// Output line: [input, result] where result is yaml.Marshal's text, or the JSON of what
// yaml.Unmarshal into interface{} gives, or "ERROR: ...".
func main() {
	sc := bufio.NewScanner(os.Stdin)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		line := sc.Text()
		var in struct {
			Mode string          `json:"mode"`
			V    json.RawMessage `json:"v"`
		}
		if err := json.Unmarshal([]byte(line), &in); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		var res string
		switch in.Mode {
		case "marshal":
			var v interface{}
			json.Unmarshal(in.V, &v)
			out, err := yaml.Marshal(v)
			res = string(out)
			if err != nil {
				res = "ERROR: " + err.Error()
			}
		case "unmarshal":
			var s string
			json.Unmarshal(in.V, &s)
			var v interface{}
			if err := yaml.Unmarshal([]byte(s), &v); err != nil {
				res = "ERROR: " + err.Error()
			} else {
				b, err := json.Marshal(v)
				if err != nil {
					res = "ERROR: " + err.Error()
				} else {
					res = string(b)
				}
			}
		}
		b, _ := json.Marshal([]interface{}{json.RawMessage(line), res})
		fmt.Println(string(b))
	}
}
