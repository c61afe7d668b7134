import json, itertools
rows = []
def t(tpl, data=None): rows.append({"tpl": tpl, "data": data})
S = lambda s: json.dumps(s, ensure_ascii=False)
strs = ["", "a", "hello world", "Hello World", "héllo wörld", "  padded  ", "a-b_c d", "x\ny\nz", "ÀÉÎ õü", "tab\there", "$x$y$", "a,b,,c", "UPPER lower MiXeD", "one  two   three"]
for s in strs:
    for f in ["upper", "lower", "title", "untitle", "trim", "nospace", "initials", "swapcase", "quote", "squote", "b64enc", "b32enc", "sha1sum", "sha256sum", "adler32sum", "toString", "len"]:
        t("{{ %s | %s }}" % (S(s), f))
    for n in [-10, -3, -1, 0, 1, 3, 5, 100]:
        t("{{ %s | trunc %d }}" % (S(s), n))
        t("{{ abbrev %d %s }}" % (n, S(s)))
        t("{{ wrap %d %s }}" % (n, S(s)))
        t("{{ wrapWith %d \"|\" %s }}" % (n, S(s)))
        t("{{ indent %d %s }}" % (n, S(s)))
        t("{{ nindent %d %s }}" % (n, S(s)))
    for a, b in [(0, 3), (1, 4), (-1, 2), (2, -1), (3, 100), (5, 2), (0, 0)]:
        t("{{ substr %d %d %s }}" % (a, b, S(s)))
        t("{{ abbrevboth %d %d %s }}" % (a, b + 5, S(s)))
    for sep in [" ", ",", "", "ll", "$"]:
        t("{{ splitList %s %s | toJson }}" % (S(sep), S(s)))
        t("{{ split %s %s | toJson }}" % (S(sep), S(s)))
        t("{{ splitn %s 2 %s | toJson }}" % (S(sep), S(s)))
        t("{{ replace %s \"_\" %s }}" % (S(sep), S(s)))
    t("{{ trimAll \"ad \" %s }}" % S(s)); t("{{ trimPrefix \"he\" %s }}" % S(s)); t("{{ trimSuffix \"ld\" %s }}" % S(s))
    t("{{ contains \"l\" %s }} {{ hasPrefix \"h\" %s }} {{ hasSuffix \"d\" %s }}" % (S(s), S(s), S(s)))
    t("{{ repeat 3 %s }}" % S(s))
for v in ["1", "1.5", "true", "nil", "(list 1 2)", "(dict \"a\" 1)", ".f", ".i", ".s", ".l", ".m", ".n", ".big", ".small"]:
    d = {"f": 1.5, "i": 3, "s": "str", "l": [1, "a", None, 2.5], "m": {"b": 1, "a": [1, 2]}, "n": None, "big": 1e21, "small": 1e-7}
    for f in ["toString", "quote", "squote", "toJson", "toPrettyJson", "toRawJson", "typeOf", "kindOf", "toStrings", "empty", "int", "int64", "float64", "toDecimal", "add1", "add1f", "ceil", "floor", "b64enc"]:
        t("{{ %s | %s }}" % (v, f), d)
    t("{{ cat %s \"x\" %s }}" % (v, v), d)
    t("{{ default \"D\" %s }}" % v, d)
    t("{{ list %s %s | uniq | toJson }}" % (v, v), d)
    t("{{ join \"-\" %s }}" % v, d)
    t("{{ sortAlpha %s | toJson }}" % v, d)
nums = ["0", "1", "-7", "2.5", "\"3\"", "\"0x1F\"", "\"017\"", "\"3.7\"", "\"abc\"", "true", ".f", ".big"]
d = {"f": 2.75, "big": 12345678901.5}
for a in nums:
    for b in ["3", "-2", "0.5", "\"4\"", ".f"]:
        for f in ["add", "sub", "mul", "div", "mod", "addf", "subf", "mulf", "divf", "max", "min", "maxf", "minf"]:
            t("{{ %s %s %s }}" % (f, a, b), d)
    t("{{ atoi %s }}" % a, d)
    t("{{ round %s 1 }} {{ round %s 0 0.3 }}" % (a, a), d)
for exprs in ["1.1 2.2 3.3", "0.1 0.2", "100 3", "1 3", "10 4 2", "1e20 3", "0.000001 3", "2 0"]:
    for f in ["addf", "subf", "mulf", "divf"]:
        t("{{ %s %s }}" % (f, exprs))
for a in range(-3, 4):
    for b in range(-3, 4):
        t("{{ seq %d %d }}|{{ until %d | toJson }}|{{ untilStep %d %d 1 | toJson }}" % (a, b, a, a, b))
        for c in [-2, 1, 2]:
            t("{{ seq %d %d %d }}|{{ untilStep %d %d %d | toJson }}" % (a, c, b, a, b, c))
lists = ["(list)", "(list 1 2 3)", "(list \"b\" \"a\" \"b\" nil 0 \"\")", ".l", "(list (list 1) (dict \"a\" 1))"]
d = {"l": [3, "x", None, 3, {"k": "v"}]}
for l in lists:
    for f in ["first", "last", "rest", "initial", "reverse", "uniq", "compact", "len", "toJson"]:
        t("{{ %s | %s | toJson }}" % (l, f), d)
    t("{{ without %s 1 \"b\" | toJson }}" % l, d)
    t("{{ has 3 %s }} {{ has \"b\" %s }}" % (l, l), d)
    t("{{ append %s 9 | toJson }} {{ prepend %s 0 | toJson }}" % (l, l), d)
    t("{{ concat %s %s | toJson }}" % (l, l), d)
    for n in [1, 2, 4]:
        t("{{ chunk %d %s | toJson }}" % (n, l), d)
    for i, j in [(0, 0), (0, 1), (1, 2), (0, 5)]:
        t("{{ slice %s %d %d | toJson }}" % (l, i, j), d)
vals = ["0", "1", "\"\"", "\"x\"", "false", "true", "nil", "(list)", "(list 1)", "(dict)", "(dict \"z\" 1)"]
for a in vals:
    for b in vals:
        t("{{ merge (dict \"k\" %s \"n\" (dict \"x\" %s)) (dict \"k\" %s \"n\" (dict \"x\" %s \"y\" 2)) | toJson }}" % (a, a, b, b))
        t("{{ mergeOverwrite (dict \"k\" %s \"n\" (dict \"x\" %s)) (dict \"k\" %s \"n\" (dict \"x\" %s \"y\" 2)) | toJson }}" % (a, a, b, b))
    t("{{ default \"D\" %s }}|{{ empty %s }}|{{ coalesce %s \"C\" }}|{{ all %s 1 }}|{{ any %s 0 }}" % (a, a, a, a, a))
d = {"a": {"b": {"c": 1, "l": [1, 2]}, "e": None}, "s": "x"}
for keys in ['"a" "b" "c"', '"a" "b" "z"', '"a" "e"', '"a" "e" "f"', '"s" "x"', '"a" "b" "l"']:
    t("{{ dig %s \"DEF\" . | toJson }}" % keys, d)
t("{{ pick . \"a\" \"zz\" | toJson }} {{ omit . \"a\" | toJson }} {{ pluck \"b\" .a (dict \"b\" 2) | toJson }} {{ keys . | sortAlpha | toJson }} {{ get . \"s\" }} {{ get . \"q\" }} {{ hasKey . \"a\" }}", d)
t("{{ set . \"new\" 1 | toJson }} {{ unset . \"a\" | toJson }} {{ deepCopy . | toJson }} {{ values .a | len }}", d)
t("{{ dict \"a\" 1 \"b\" | toJson }} {{ dict 1 2 true 3 | toJson }}")
t("{{ ternary 1 2 true }} {{ ternary 1 2 false }}")
regs = [("\\d+", "abc 123 ٣٤ 45"), ("\\w+", "héllo wörld_1"), ("\\bfoo\\b", "foo foobar afoo foo"), ("(a+)(b*)", "aab ab b aaa"), ("(?P<first>\\w+) (?P<last>\\w+)", "John Smith"),
        ("[[:alpha:]]+", "abc123déf"), ("^$", ""), ("a|", "banana"), ("x*", "abc"), ("[^a-c]", "abcdef"), ("\\s+", "a \t\nb"), ("(?i)HELLO", "hello Hello")]
for r, s in regs:
    t("{{ regexMatch %s %s }}|{{ regexFind %s %s }}|{{ regexFindAll %s %s -1 | toJson }}|{{ regexFindAll %s %s 1 | toJson }}" % (S(r), S(s), S(r), S(s), S(r), S(s), S(r), S(s)))
    t("{{ regexReplaceAll %s %s \"<$1|${1}x|$first>\" }}|{{ regexReplaceAllLiteral %s %s \"<$1>\" }}" % (S(r), S(s), S(r), S(s)))
    t("{{ regexSplit %s %s -1 | toJson }}|{{ regexSplit %s %s 2 | toJson }}|{{ regexSplit %s %s 0 | toJson }}" % (S(r), S(s), S(r), S(s), S(r), S(s)))
    t("{{ regexQuoteMeta %s }}" % S(r))
t("{{ regexMatch \"[\" \"x\" }}")
for p in ["", "/", "a/b/c", "/a/b/", "a//b", "../x/./y", "a.tar.gz", ".hidden", "/a/b.c/d", "a/", "//"]:
    t("{{ base %s }}|{{ dir %s }}|{{ clean %s }}|{{ ext %s }}|{{ isAbs %s }}" % (S(p), S(p), S(p), S(p), S(p)))
for u in ["https://user:pw@example.com:8443/p/a%20th?q=1&r=2#frag", "mailto:a@b.c", "/just/path?x", "http://[::1]:80/", "rel/path", "http://host"]:
    t("{{ urlParse %s | toJson }}" % S(u))
t("{{ urlJoin (dict \"scheme\" \"https\" \"host\" \"h:1\" \"path\" \"p\" \"query\" \"a=b\" \"fragment\" \"f\" \"userinfo\" \"u:p\") }}")
t("{{ urlJoin (dict \"scheme\" \"mailto\" \"opaque\" \"a@b\") }}")
for layout in ["2006-01-02", "Mon, 02 Jan 2006 15:04:05 MST", "3:04PM", "2006-01-02T15:04:05Z07:00"]:
    for ts in [0, 1560458379, 1709164800]:
        t("{{ date %s %d }}|{{ htmlDate %d }}" % (S(layout), ts, ts))
        for z in ["UTC", "America/New_York", "Europe/Berlin", "Asia/Kolkata", "Australia/Lord_Howe", "Nope/Zone", "Local"]:
            t("{{ dateInZone %s %d %s }}|{{ htmlDateInZone %d %s }}" % (S(layout), ts, S(z), ts, S(z)))
for s in ["61", "3600", "93784", "0", "-5", "abc", "1.5"]:
    t("{{ duration %s }}" % S(s))
for s in ["2h5s", "24h5s", "2400h5s", "9000h", "1m", "59s", "0s", "-3h", "junk"]:
    t("{{ durationRound %s }}" % S(s))
for l, v in [("2006-01-02", "2017-12-31"), ("2006-01-02", "bad"), ("02/01/2006 15:04", "31/12/2017 23:59")]:
    t("{{ toDate %s %s | date \"2006-01-02T15:04:05Z07:00\" }}|{{ toDate %s %s | unixEpoch }}" % (S(l), S(v), S(l), S(v)))
    t("{{ toDate %s %s | dateModify \"-1.5h\" | date \"2006-01-02 15:04\" }}" % (S(l), S(v)))
for c, v in [("^1.2.0", "1.2.3"), (">= 1.2, < 2", "1.9.9"), ("~1.2", "1.3.0"), ("1.x", "1.0.0-beta"), ("bad", "1.2.3"), ("^1", "nope")]:
    t("{{ semverCompare %s %s }}" % (S(c), S(v)))
for v in ["1.2.3-beta.1+c0ff33", "v2.0", "x"]:
    t("{{ $s := semver %s }}{{ $s.Major }}.{{ $s.Minor }}.{{ $s.Patch }}-{{ $s.Prerelease }}+{{ $s.Metadata }}|{{ $s.Original }}" % S(v))
for x in [S("Y29mZmVl"), S("not base64!"), S("MNXWMZTFMU======"), S("MNXW")]:
    t("{{ b64dec %s }}|{{ b32dec %s }}" % (x, x))
t("{{ htpasswd \"user\" \"pw\" \"sha\" }} {{ htpasswd \"us:er\" \"pw\" }}")
t("{{ derivePassword 1 \"long\" \"password\" \"user\" \"example.com\" }} {{ derivePassword 1 \"pin\" \"p\" \"u\" \"s\" }} {{ derivePassword 1 \"nope\" \"p\" \"u\" \"s\" }}")
t("{{ genPrivateKey \"nope\" }}")
for v in [".x", ".y", ".z", ".w"]:
    t("{{ typeIs \"float64\" %s }} {{ typeIsLike \"string\" %s }} {{ kindIs \"map\" %s }} {{ deepEqual %s %s }}" % (v, v, v, v, v), {"x": 1, "y": "s", "z": {"a": 1}, "w": [1]})
for v in ["1", "\"x\"", "(list 1)", "nil"]:
    t("{{ upper %s }}" % v); t("{{ trunc %s \"abc\" }}" % v); t("{{ until %s }}" % v)
t("{{ trunc .f \"abc\" }}", {"f": 2})
with open("/tmp/goyaml/corpus3.jsonl", "w") as f:
    for r in rows:
        f.write(json.dumps(r, ensure_ascii=False) + "\n")
print(len(rows))
