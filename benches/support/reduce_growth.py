# How CouchDB's own reduced reads grow with the rows under them, apart from the service:
# python3 benches/support/reduce_growth.py http://admin:secret@127.0.0.1:PORT   (a scratch node)
# A view of `_sum` over arrays with a days histogram (as report_by_carrier) and one of `_count`,
# keyed [scope, carrier, time] for three scopes; a grouped query (group_level=2) and a range
# reduction, medians of 30, at 1,000 and 30,000 documents.
import json, random, time, urllib.request, sys, base64
URL = sys.argv[1]  # http://admin:secret@127.0.0.1:PORT
def req(method, path, body=None):
    u = URL.split('//')[1]; cred, host = u.split('@')
    r = urllib.request.Request(f"http://{host}{path}", method=method, data=json.dumps(body).encode() if body is not None else None,
                               headers={"Content-Type": "application/json", "Authorization": "Basic " + base64.b64encode(cred.encode()).decode()})
    with urllib.request.urlopen(r, timeout=3600) as resp:
        return json.load(resp)
db = "/exp2"
try: req("DELETE", db)
except Exception: pass
req("PUT", db)
common = "var c = doc.c; var t = doc.t;"
req("PUT", db + "/_design/a", {"views": {
  "hist": {"map": "function(doc){ var v=[1,1,0,0,0,0]; var d=doc.d; if (d!==null){ for (var i=0;i<=d;i++){ v.push(i===d?1:0);} } emit(['A', doc.c, doc.t], v); emit(['B', doc.c, doc.t], v); emit(['M', doc.c, doc.t], v);}", "reduce": "_sum"},
}})
req("PUT", db + "/_design/b", {"views": {
  "counts": {"map": "function(doc){ emit(['A', doc.c, doc.t], null); emit(['B', doc.c, doc.t], null); emit(['M', doc.c, doc.t], null);}", "reduce": "_count"},
}})
def load(n):
    docs = []
    for _ in range(n):
        docs.append({"c": "carrier%d" % (11 - min(11, int(random.uniform(0, 144) ** 0.5))), "t": random.randint(0, 10**7),
                     "d": random.randint(0, 60) if random.random() < 0.5 else None})
        if len(docs) == 2000:
            req("POST", db + "/_bulk_docs", {"docs": docs}); docs = []
    if docs: req("POST", db + "/_bulk_docs", {"docs": docs})
def timeit(f, n=30):
    f(); ts = []
    for _ in range(n):
        t = time.time(); f(); ts.append(time.time() - t)
    ts.sort(); return ts[len(ts)//2] * 1000
def grouped(dd, v): return lambda: req("GET", f"{db}/_design/{dd}/_view/{v}?group_level=2&start_key=%5B%22A%22%5D&end_key=%5B%22A%22%2C%7B%7D%5D")
def ranged(dd, v): return lambda: req("GET", f"{db}/_design/{dd}/_view/{v}?start_key=%5B%22A%22%2C%22carrier0%22%2C1000000%5D&end_key=%5B%22A%22%2C%22carrier0%22%2C9000000%5D")
for total in (1000, 30000):
    load(total - (1000 if total > 1000 else 0))
    t = time.time(); req("GET", db + "/_design/a/_view/hist?limit=1&reduce=false"); req("GET", db + "/_design/b/_view/counts?limit=1&reduce=false"); idx = time.time() - t
    print(total, "index %.1fs" % idx, "grouped hist %.1f ms" % timeit(grouped("a", "hist")), "grouped counts %.1f ms" % timeit(grouped("b", "counts")),
          "range hist %.1f ms" % timeit(ranged("a", "hist")), "range counts %.1f ms" % timeit(ranged("b", "counts")), flush=True)
