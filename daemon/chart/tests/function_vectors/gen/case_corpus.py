import json, random
random.seed(5)
rows=[]
base=["FirstName","HTTPServer","NoHTTPS","GO_PATH","GO PATH","GO-PATH","http2xx","HTTP20xOK","Duration2m3s","Bld4Floor3rd","http_server","_camel_case","no_https","_complex__case_","all","GOLANG_IS_GREAT","some words","a","_","__","-a-","ABC","aBC","AbC","x1y2","X1Y2","v1.2.3","foo.bar","foo/bar-baz","ÀÉÎ õü","héllo Wörld","日本語テキスト","a  b","A__B","abc_","  lead","trail  ","Çava","ǅemal","1abc","123","HTTP2XX","iPhone","eBay","JSONData","myJSONData2Go","k8s-app","app.kubernetes.io/name","foo--bar","X","xY","Xy","a.B","a:b","a!b","a$b","a+b","a😀b","ﬁne"]
alpha=list("aAbB1_- .:$😀éÉ")
for _ in range(300):
    base.append("".join(random.choice(alpha) for _ in range(random.randint(1,7))))
for s in base:
    for f in ["snakecase","kebabcase","camelcase"]:
        rows.append({"tpl":"{{ %s %s }}" % (f, json.dumps(s, ensure_ascii=False)), "data": None})
with open("/tmp/goyaml/corpus4.jsonl","w") as f:
    for r in rows: f.write(json.dumps(r, ensure_ascii=False)+"\n")
print(len(rows))
