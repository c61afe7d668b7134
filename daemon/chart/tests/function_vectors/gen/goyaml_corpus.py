import json, random
random.seed(7)
out = []
def m(v): out.append({"mode": "marshal", "v": v})
def u(s): out.append({"mode": "unmarshal", "v": s})

curated = ["", " ", "a", "yes", "Yes", "no", "on", "off", "y", "n", "Y", "true", "True", "false", "null", "Null", "~",
 "0", "1", "-1", "+1", "1.0", "1.", ".5", "1e3", "1E3", "1e", "0x1F", "0o17", "0b101", "017", "08", "1_000", "1:20", "1:2:3", "12:30:45",
 "2020-01-01", "2020-1-1", "2020-01-01T10:00:00Z", "2020-01-01 10:00:00", "2020-13-45", "1234-", ".inf", ".NaN", "-.inf", "inf", "nan", "NaN",
 "a: b", "a:b", "a :b", "- a", "-a", "-", "--", "---", "...", "? a", "?a", ":", ": a", "a #b", "a#b", "#a", "a,b", "[a]", "{a}", "a[b]", "&a", "*a", "!a", "|a", ">a",
 "'a'", "\"a\"", "%a", "@a", "`a", "a'b", "a\"b", "a\\b", "a\tb", "\ta", "a\t", "a ", " a", "a  b", "a\nb", "a\nb\n", "a\nb\n\n", "\na", " a\nb", "a \nb", "a\n b", "a\n\nb",
 "\n", "\n\n", "a\r\nb", "é", "日本", "😀", "a\u00a0b", "\u00a0", "a\u2028b", "a\x85b", "\x00", "\x01a", "\x7f", "a\ufeffb", "<<", "=", "a=b", "http://x.y/z?q=1#f",
 "C:\\path", "$HOME", "${x}", "{{ .Values }}", "key: value: x", "- - x", "a - b", "a -b", "a? b", "a ?b", "a: ", "a:", "a:\tb"]
for s in curated:
    m({"k": s})
    m({s: "v"} if s != "" else {"": "v"})
    m([s])
alphabet = list(" :#-?&*!|>'\"%@`,[]{}\n\t\\~.0123456789eExyYnNoOtTfFuUlL+_/=<aé😀\u00a0")
for _ in range(400):
    s = "".join(random.choice(alphabet) for _ in range(random.randint(1, 6)))
    m({"k": s})
for _ in range(60):
    s = "".join(random.choice(alphabet) for _ in range(random.randint(1, 5)))
    m({s: 1})
words = ["lorem", "ipsum", "dolor", "sit", "amet", "consectetur", "a", "bb", "x:", "#y", "'q'", "é", "longwordwithoutanyspacesatallbutstillquitelong" * 2]
for _ in range(60):
    n = random.randint(10, 45)
    seps = [" ", " ", " ", "  ", "\n"] if random.random() < 0.3 else [" "]
    s = "".join(random.choice(words) + random.choice(seps) for _ in range(n)).rstrip()
    if random.random() < 0.3: s = "'" + s
    m({"description": s})
    m([{"nested": {"deeper": s}}])
nums = [0, 1, -1, 64, 1000000, 1e6 + 0.5, 123456789.5, 1e20, 1e21, 1.5e21, 12345678901234567890, 9007199254740993, 0.1, 0.000001, 0.0000001, 1e-7, 3.14159, -2.5, 1e100, 2**63, 2**64, -2**63]
for x in nums:
    m({"n": x})
m({"a": {}, "b": [], "c": None, "d": [[]], "e": [{}], "f": [[1, [2, {"g": []}]]], "h": {"i": {"j": {"k": [None, True, False]}}}})
m([[["deep"]], {"a": [{"b": "c\nd"}]}, "x"])
m({"list": [{"a": 1, "b": [1, 2]}, {"c": {"d": "e"}}]})
m({"a10": 1, "a9": 2, "a": 3, "A": 4, "_": 5, "1": 6, "10": 7, "2": 8, "a01": 9, "a1": 10, "a001": 11, "ab": 12, "a_b": 13, "Ä": 14, "-x": 15, "0": 16, "00": 17})
m("top"); m(None); m(True); m(1.5); m([]); m({}); m("a\nb"); m("yes")
m({"k" * 130: "long key"})
# unmarshal (YAML -> JSON)
docs = ["a: yes", "a: Yes", "a: on", "a: off", "a: y", "a: n", "a: 0o17", "a: 017", "a: 0x1F", "a: 1_000", "a: 1e3", "a: .5", "a: +1", "a: -0",
 "a: 2020-01-01", "a: 2001-12-14t21:59:43.10-05:00", "a: 2001-12-14 21:59:43.10", "a: 1:20", "a: ~", "a: null", "a:", "a: !!str 123", "a: !!int '7'",
 "1: a", "1.5: x", "true: y", "yes: z", "~: n", "a: 9223372036854775807", "a: 9223372036854775808", "a: 18446744073709551616",
 "a: 'it''s'", "a: \"x\\ty\\u00e9\"", "a: |\n  x\n  y\n", "a: |-\n  x\n", "a: >\n  x\n  y\n\n  z\n", "a: |+\n  x\n\n", "- a\n- b: c\n  d: [1, 2]",
 "base: &b {x: 1, y: 2}\nd:\n  <<: *b\n  y: 3", "a: &x [1, 2]\nb: *x", "---\na: 1\n---\nb: 2", "", "# comment only", "a: 1\na: 2",
 "a: 0.1", "a: 1.0", "a: 100", "a: 1e400", "a: .inf", "a: -.inf", "a: .nan", "a: 0b101", "a: 12:30:45", "a: 123456789012", "[1, 2, 3]", "\"just a string\"",
 "a: {b: {c: [d, {e: f}]}}", "a: 'yes'", "a: \"on\"", "? complex\n: value", "a: [a: b]", "a: b: c", "a: [1, 2", "a: *missing", "\ta: 1", "key with spaces: v",
 "a: 0777", "a: 08", "a: 0.", "a: 1_0.5", "a: +.5", "a: Infinity", "a: NaN", "a: 2020-1-1", "a: 2020-01-01T10:00:00+02:00", "a: 2020-01-01 10:00:00 +02:00"]
for d in docs:
    u(d)
with open("/tmp/goyaml/corpus.jsonl", "w") as f:
    for o in out:
        f.write(json.dumps(o, ensure_ascii=False) + "\n")
print(len(out))
