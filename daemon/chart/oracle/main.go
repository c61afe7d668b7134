// Command oracle renders one Helm template per request with Go's own text/template, sprig and
// Helm's template functions, so that convoy's native engine can be compared with Go.
//
// Protocol: one JSON request per stdin line, one JSON answer per stdout line, in order.
//
//	{"name": "fuzz/templates/t.yaml", "src": "{{ .Values.a }}", "values": {"a": 1}}
//	-> {"out": "1"}   or   {"err": "template: ..."}
//
// Optional request fields: "bench": N executes the parsed template N times and adds
// "median_ns" (the median execution time) to the answer; "bench_parse": true times parsing
// plus execution instead. The flag -bench N applies "bench": N to every request.
//
// The template is rendered the way Helm 3's engine renders one template of a chart: a set
// named "gotpl" with missingkey=zero, sprig's TxtFuncMap (minus env/expandenv) plus Helm's
// functions, the template parsed under its name and executed with the context that
// convoy_chart::render_str builds; "<no value>" is then removed from the output. Values are
// decoded from JSON, so numbers are float64, as Helm's values are. Written from Go's and
// Helm's documentation and observed behaviour; see README.md.
//
// Build (GOPATH mode, Debian's packages):
//
//	GOPATH=/usr/share/gocode GO111MODULE=off go build -o oracle .
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"sort"
	"strings"
	"text/template"
	"time"
	"unicode/utf8"

	"github.com/BurntSushi/toml"
	"github.com/Masterminds/sprig"
	yamlv3 "gopkg.in/yaml.v3"
	"sigs.k8s.io/yaml"
)

// Helm's limit on how often one name may be nested in include/tpl.
const maxIncludeNesting = 1000

// Markers Helm wraps around required/fail messages (its cleanupExecError looks for them).
const warnStart, warnEnd = "HELM_ERR_START", "HELM_ERR_END"

type request struct {
	Name       string          `json:"name"`
	Src        string          `json:"src"`
	Values     json.RawMessage `json:"values"`
	Bench      int             `json:"bench,omitempty"`
	BenchParse bool            `json:"bench_parse,omitempty"`
}

type answer struct {
	Out *string `json:"out,omitempty"`
	Err *string `json:"err,omitempty"`
	// Set when Go's output is not valid UTF-8 (JSON carries it with U+FFFD replacements);
	// convoy's strings are always UTF-8, so such a case cannot match byte for byte.
	InvalidUTF8 bool  `json:"invalid_utf8,omitempty"`
	MedianNs    int64 `json:"median_ns,omitempty"`
	Runs        int   `json:"runs,omitempty"`
}

func main() {
	bench := flag.Int("bench", 0, "execute every request's template N times and report the median in ns")
	flag.Parse()
	in := bufio.NewReader(os.Stdin)
	out := bufio.NewWriter(os.Stdout)
	for {
		line, readErr := in.ReadBytes('\n')
		if len(bytes.TrimSpace(line)) > 0 {
			var req request
			var ans answer
			if err := json.Unmarshal(line, &req); err != nil {
				msg := "bad request: " + err.Error()
				ans.Err = &msg
			} else {
				if req.Bench == 0 {
					req.Bench = *bench
				}
				ans = handle(&req)
			}
			b, err := json.Marshal(ans)
			if err != nil {
				b = []byte(fmt.Sprintf(`{"err": %q}`, "cannot encode answer: "+err.Error()))
			}
			out.Write(b)
			out.WriteByte('\n')
			out.Flush()
		}
		if readErr != nil {
			return
		}
	}
}

// handle renders one request; a panic anywhere becomes an "err" answer.
func handle(req *request) (ans answer) {
	defer func() {
		if r := recover(); r != nil {
			msg := fmt.Sprintf("panic: %v", r)
			ans = answer{Err: &msg}
		}
	}()
	if req.Name == "" {
		req.Name = "fuzz/templates/t.yaml"
	}
	out, err := render(req.Name, req.Src, req.Values)
	if err != nil {
		msg := err.Error()
		ans.Err = &msg
	} else {
		ans.Out = &out
		ans.InvalidUTF8 = !utf8.ValidString(out)
	}
	if req.Bench > 0 {
		ans.MedianNs = benchmark(req)
		ans.Runs = req.Bench
	}
	return ans
}

// decodeValues reads values as Helm does: JSON objects, numbers as float64.
func decodeValues(raw json.RawMessage) map[string]interface{} {
	var v interface{}
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &v); err != nil {
			panic("values are not JSON: " + err.Error())
		}
	}
	if m, ok := v.(map[string]interface{}); ok {
		return m
	}
	return map[string]interface{}{}
}

// render parses and executes one template in a fresh set.
func render(name, src string, rawValues json.RawMessage) (string, error) {
	t, err := parse(name, src)
	if err != nil {
		return "", err
	}
	return execute(t, name, rawValues)
}

func parse(name, src string) (*template.Template, error) {
	t := newSet()
	if _, err := t.New(name).Parse(src); err != nil {
		return nil, err
	}
	return t, nil
}

func execute(t *template.Template, name string, rawValues json.RawMessage) (string, error) {
	var buf strings.Builder
	if err := t.ExecuteTemplate(&buf, name, renderContext(name, decodeValues(rawValues))); err != nil {
		return "", err
	}
	// Helm removes what missingkey=zero still prints for a missing key of an interface map.
	return strings.ReplaceAll(buf.String(), "<no value>", ""), nil
}

// benchmark times req.Bench executions (parse + execute with bench_parse) and returns
// the median in nanoseconds. Values are decoded afresh, untimed, before each run, so a
// template that mutates them starts from the same data every time.
func benchmark(req *request) int64 {
	times := make([]int64, 0, req.Bench)
	var parsed *template.Template
	if !req.BenchParse {
		var err error
		if parsed, err = parse(req.Name, req.Src); err != nil {
			return 0
		}
	}
	for i := 0; i < req.Bench; i++ {
		data := renderContext(req.Name, decodeValues(req.Values))
		start := time.Now()
		t := parsed
		if req.BenchParse {
			var err error
			if t, err = parse(req.Name, req.Src); err != nil {
				return 0
			}
		} else {
			// include's nesting counts live in the set's closures: use a fresh binding.
			rebind(t)
		}
		var buf strings.Builder
		_ = t.ExecuteTemplate(&buf, req.Name, data)
		_ = strings.ReplaceAll(buf.String(), "<no value>", "")
		times = append(times, time.Since(start).Nanoseconds())
	}
	sort.Slice(times, func(i, j int) bool { return times[i] < times[j] })
	return times[len(times)/2]
}

// ---------------------------------------------------------------------------------------
// The render context: what convoy_chart::render_str passes as dot.

// VersionSet is Helm's .Capabilities.APIVersions.
type VersionSet []string

// Has tells whether the API group/version is available.
func (v VersionSet) Has(apiVersion string) bool {
	for _, x := range v {
		if x == apiVersion {
			return true
		}
	}
	return false
}

// KubeVersion is Helm's .Capabilities.KubeVersion.
type KubeVersion struct {
	Version string
	Major   string
	Minor   string
}

// String prints the version, as Helm's KubeVersion does.
func (kv *KubeVersion) String() string { return kv.Version }

// GitVersion is Helm's deprecated alias of Version.
func (kv *KubeVersion) GitVersion() string { return kv.Version }

// BuildInfo is Helm's .Capabilities.HelmVersion.
type BuildInfo struct {
	Version      string `json:"version,omitempty"`
	GitCommit    string `json:"git_commit,omitempty"`
	GitTreeState string `json:"git_tree_state,omitempty"`
	GoVersion    string `json:"go_version,omitempty"`
}

// Capabilities is Helm's .Capabilities.
type Capabilities struct {
	APIVersions VersionSet
	KubeVersion KubeVersion
	HelmVersion BuildInfo
}

// The API versions `helm template` reports offline; keep in sync with
// DEFAULT_API_VERSIONS in daemon/chart/src/engine/objects.rs.
var defaultAPIVersions = []string{
	"v1",
	"admissionregistration.k8s.io/v1", "admissionregistration.k8s.io/v1beta1",
	"apiextensions.k8s.io/v1", "apiextensions.k8s.io/v1beta1",
	"apps/v1", "apps/v1beta1", "apps/v1beta2",
	"authentication.k8s.io/v1", "authentication.k8s.io/v1beta1",
	"authorization.k8s.io/v1", "authorization.k8s.io/v1beta1",
	"autoscaling/v1", "autoscaling/v2", "autoscaling/v2beta1", "autoscaling/v2beta2",
	"batch/v1", "batch/v1beta1",
	"certificates.k8s.io/v1", "certificates.k8s.io/v1beta1",
	"coordination.k8s.io/v1", "coordination.k8s.io/v1beta1",
	"discovery.k8s.io/v1", "discovery.k8s.io/v1beta1",
	"events.k8s.io/v1", "events.k8s.io/v1beta1",
	"extensions/v1beta1",
	"flowcontrol.apiserver.k8s.io/v1", "flowcontrol.apiserver.k8s.io/v1beta1",
	"networking.k8s.io/v1", "networking.k8s.io/v1beta1",
	"node.k8s.io/v1", "node.k8s.io/v1beta1",
	"policy/v1", "policy/v1beta1",
	"rbac.authorization.k8s.io/v1", "rbac.authorization.k8s.io/v1beta1",
	"scheduling.k8s.io/v1", "scheduling.k8s.io/v1beta1",
	"storage.k8s.io/v1", "storage.k8s.io/v1beta1",
}

// renderContext is dot for a template: render_str's objects. Release, Files and Template
// are plain maps there (render_str has no chart: no IsInstall/Revision, BasePath ""), and
// Capabilities is Helm's struct (convoy models its fields and methods).
func renderContext(name string, values map[string]interface{}) map[string]interface{} {
	return map[string]interface{}{
		"Values": values,
		"Release": map[string]interface{}{
			"Name":      "release-name",
			"Namespace": "default",
			"Service":   "Helm",
		},
		"Capabilities": &Capabilities{
			APIVersions: append(VersionSet(nil), defaultAPIVersions...),
			KubeVersion: KubeVersion{Version: "v1.20.0", Major: "1", Minor: "20"},
			HelmVersion: BuildInfo{Version: "v3.21.4"},
		},
		"Files":    map[string]interface{}{},
		"Template": map[string]interface{}{"Name": name, "BasePath": ""},
	}
}

// ---------------------------------------------------------------------------------------
// The function map.

// newSet is Helm's template set: "gotpl", missingkey=zero, sprig + Helm's functions, and
// include/tpl bound to this set.
func newSet() *template.Template {
	t := template.New("gotpl")
	t.Option("missingkey=zero")
	t.Funcs(baseFuncs())
	rebind(t)
	return t
}

// rebind gives t its own include/tpl (closing over t and a fresh nesting count).
func rebind(t *template.Template) {
	included := map[string]int{}
	t.Funcs(template.FuncMap{
		"include": includeFunc(t, included),
		"tpl":     tplFunc(t, included),
	})
}

func includeFunc(t *template.Template, included map[string]int) func(string, interface{}) (string, error) {
	return func(name string, data interface{}) (string, error) {
		var buf strings.Builder
		if n, ok := included[name]; ok {
			if n > maxIncludeNesting {
				return "", fmt.Errorf("rendering template has a nested reference name: %s: unable to execute template", name)
			}
			included[name]++
		} else {
			included[name] = 1
		}
		err := t.ExecuteTemplate(&buf, name, data)
		included[name]--
		return buf.String(), err
	}
}

func tplFunc(parent *template.Template, included map[string]int) func(string, interface{}) (string, error) {
	return func(text string, vals interface{}) (string, error) {
		t, err := parent.Clone()
		if err != nil {
			return "", fmt.Errorf("cannot clone template: %w", err)
		}
		// Clone drops the option; Helm sets it again, and rebinds include/tpl to the clone
		// so that defines inside the text can be included.
		t.Option("missingkey=zero")
		t.Funcs(template.FuncMap{
			"include": includeFunc(t, included),
			"tpl":     tplFunc(t, included),
		})
		t, err = t.New(parent.Name()).Parse(text)
		if err != nil {
			return "", fmt.Errorf("cannot parse template %q: %w", text, err)
		}
		var buf strings.Builder
		if err := t.Execute(&buf, vals); err != nil {
			return "", fmt.Errorf("error during tpl function execution for %q: %w", text, err)
		}
		return strings.ReplaceAll(buf.String(), "<no value>", ""), nil
	}
}

var baseFuncMap template.FuncMap

func baseFuncs() template.FuncMap {
	if baseFuncMap != nil {
		return baseFuncMap
	}
	f := sprig.TxtFuncMap()
	delete(f, "env")
	delete(f, "expandenv")
	extra := template.FuncMap{
		"toToml":        toTOML,
		"fromToml":      fromTOML,
		"toYaml":        toYAML,
		"mustToYaml":    mustToYAML,
		"toYamlPretty":  toYAMLPretty,
		"fromYaml":      fromYAML,
		"fromYamlArray": fromYAMLArray,
		"toJson":        toJSON,
		"mustToJson":    mustToJSON,
		"fromJson":      fromJSON,
		"fromJsonArray": fromJSONArray,
		"required":      required,
		"fail":          fail,
		"lookup": func(string, string, string, string) (map[string]interface{}, error) {
			return map[string]interface{}{}, nil
		},
		// Placeholders, replaced per set by rebind.
		"include": func(string, interface{}) string { return "not implemented" },
		"tpl":     func(string, interface{}) interface{} { return "not implemented" },
	}
	for k, v := range extra {
		f[k] = v
	}
	baseFuncMap = f
	return f
}

func required(warn string, val interface{}) (interface{}, error) {
	if val == nil {
		return val, errors.New(warnStart + warn + warnEnd)
	}
	if s, ok := val.(string); ok && s == "" {
		return val, errors.New(warnStart + warn + warnEnd)
	}
	return val, nil
}

func fail(msg string) (string, error) {
	return "", errors.New(warnStart + msg + warnEnd)
}

// toYAML: sigs.k8s.io/yaml, final newline trimmed, "" on error.
func toYAML(v interface{}) string {
	data, err := yaml.Marshal(v)
	if err != nil {
		return ""
	}
	return strings.TrimSuffix(string(data), "\n")
}

func mustToYAML(v interface{}) string {
	data, err := yaml.Marshal(v)
	if err != nil {
		panic(err)
	}
	return strings.TrimSuffix(string(data), "\n")
}

// toYAMLPretty: yaml.v3 with a two-space indent.
func toYAMLPretty(v interface{}) string {
	var data bytes.Buffer
	enc := yamlv3.NewEncoder(&data)
	enc.SetIndent(2)
	if err := enc.Encode(v); err != nil {
		return ""
	}
	return strings.TrimSuffix(data.String(), "\n")
}

// fromYAML: a map; on error a map holding the message under "Error".
func fromYAML(str string) map[string]interface{} {
	m := map[string]interface{}{}
	if err := yaml.Unmarshal([]byte(str), &m); err != nil {
		m["Error"] = err.Error()
	}
	return m
}

func fromYAMLArray(str string) []interface{} {
	a := []interface{}{}
	if err := yaml.Unmarshal([]byte(str), &a); err != nil {
		a = []interface{}{err.Error()}
	}
	return a
}

func toTOML(v interface{}) string {
	b := bytes.NewBuffer(nil)
	if err := toml.NewEncoder(b).Encode(v); err != nil {
		return err.Error()
	}
	return b.String()
}

func fromTOML(str string) map[string]interface{} {
	m := make(map[string]interface{})
	if _, err := toml.Decode(str, &m); err != nil {
		m["Error"] = err.Error()
	}
	return m
}

func toJSON(v interface{}) string {
	data, err := json.Marshal(v)
	if err != nil {
		return ""
	}
	return string(data)
}

func mustToJSON(v interface{}) string {
	data, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(data)
}

func fromJSON(str string) map[string]interface{} {
	m := make(map[string]interface{})
	if err := json.Unmarshal([]byte(str), &m); err != nil {
		m["Error"] = err.Error()
	}
	return m
}

func fromJSONArray(str string) []interface{} {
	a := []interface{}{}
	if err := json.Unmarshal([]byte(str), &a); err != nil {
		a = []interface{}{err.Error()}
	}
	return a
}
