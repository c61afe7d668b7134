package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"text/template"

	"github.com/Masterminds/sprig/v3"
)

// Input lines: {"tpl": "...", "data": <json>}; output [input, output or "ERROR: ..."].
// Data is decoded as Helm decodes values (numbers are float64).
func main() {
	fm := sprig.TxtFuncMap()
	delete(fm, "env")
	delete(fm, "expandenv")
	sc := bufio.NewScanner(os.Stdin)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		line := sc.Text()
		var in struct {
			Tpl  string      `json:"tpl"`
			Data interface{} `json:"data"`
		}
		json.Unmarshal([]byte(line), &in)
		var res string
		t, err := template.New("t").Funcs(fm).Parse(in.Tpl)
		if err != nil {
			res = "ERROR: " + err.Error()
		} else {
			var b bytes.Buffer
			if err := t.Execute(&b, in.Data); err != nil {
				res = "ERROR: " + err.Error()
			} else {
				res = b.String()
			}
		}
		b, _ := json.Marshal([]interface{}{json.RawMessage(line), res})
		fmt.Println(string(b))
	}
}
