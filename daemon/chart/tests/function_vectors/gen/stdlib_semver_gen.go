package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/Masterminds/semver/v3"
)

// Input lines: {"mode": ..., "a": ..., "b": ...}; output [input, result].
func main() {
	sc := bufio.NewScanner(os.Stdin)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		line := sc.Text()
		var in struct {
			Mode string  `json:"mode"`
			A    string  `json:"a"`
			B    string  `json:"b"`
			F    string  `json:"f"`
			N    int64   `json:"n"`
		}
		json.Unmarshal([]byte(line), &in)
		res := ""
		switch in.Mode {
		case "semverCompare":
			c, err := semver.NewConstraint(in.A)
			if err != nil {
				res = "ERROR"
				break
			}
			v, err := semver.NewVersion(in.B)
			if err != nil {
				res = "ERROR"
				break
			}
			res = fmt.Sprint(c.Check(v))
		case "versionCompare":
			a, err1 := semver.NewVersion(in.A)
			b, err2 := semver.NewVersion(in.B)
			if err1 != nil || err2 != nil {
				res = "ERROR"
				break
			}
			res = fmt.Sprint(a.Compare(b))
		case "floatV":
			f, _ := strconv.ParseFloat(in.F, 64)
			res = fmt.Sprint(f)
		case "floatJSON":
			f, _ := strconv.ParseFloat(in.F, 64)
			b, _ := json.Marshal(f)
			res = string(b)
		case "timeFormat":
			res = time.Unix(in.N, 123456789).UTC().Format(in.A)
		case "timeParse":
			t, err := time.Parse(in.A, in.B)
			if err != nil {
				res = "ERROR"
			} else {
				res = fmt.Sprint(t.Unix(), " ", t.Nanosecond())
			}
		case "duration":
			d, err := time.ParseDuration(in.A)
			if err != nil {
				res = "ERROR"
			} else {
				res = fmt.Sprint(int64(d), " ", d.String())
			}
		case "durationString":
			res = time.Duration(in.N).String()
		}
		b, _ := json.Marshal([]interface{}{json.RawMessage(line), res})
		fmt.Println(string(b))
	}
}
