# What each of the desk's views (and the listings' listing_by_group) costs to index: 20,000
# requests shaped as the bench makes them, one view per database, on a scratch CouchDB node.
# python3 benches/support/index_cost.py http://admin:secret@127.0.0.1:PORT [view ...]
import json, random, time, urllib.request, sys, base64
URL = sys.argv[1]
def req(method, path, body=None):
    u = URL.split('//')[1]; cred, host = u.split('@')
    r = urllib.request.Request(f"http://{host}{path}", method=method, data=json.dumps(body).encode() if body is not None else None,
        headers={"Content-Type": "application/json", "Authorization": "Basic " + base64.b64encode(cred.encode()).decode()})
    with urllib.request.urlopen(r, timeout=3600) as resp: return json.load(resp)
desk = json.load(open('couchdb_views/kazoo_port_requests_desk.json'))
own = json.load(open('couchdb_views/kazoo_port_requests.json'))
now = 63_900_000_000; DAY = 86400
states = ["unconfirmed","submitted","pending","scheduled","rejected","canceled","completed","completed","completed","completed"]
paths = {"unconfirmed": [], "submitted": ["submitted"], "pending": ["submitted","pending"], "scheduled": ["submitted","pending","scheduled"],
         "completed": ["submitted","pending","scheduled","completed"], "rejected": ["submitted","rejected"], "canceled": ["canceled"]}
def doc(i):
    st = random.choice(states); created = now - random.randint(DAY, 365*DAY); at = created
    tr = [{"timestamp": created, "type": "transition", "transition": {"new": "unconfirmed"}}]
    prev = "unconfirmed"
    for s in paths[st]:
        at = min(now, at + random.randint(60, 6*DAY)); e = {"timestamp": at, "type": "transition", "transition": {"new": s, "previous": prev}}
        if s == "rejected": e["reason_code"] = "wrong_pin"
        tr.insert(0, e); prev = s
    d = {"pvt_type": "port_request", "pvt_port_state": st, "pvt_account_id": "acct%d" % random.randint(0, 9999), "pvt_port_authority": "auth",
         "pvt_tree": ["master", "auth"], "pvt_created": created, "pvt_modified": at, "pvt_transitions": tr, "bill": {"carrier": "c%d" % random.randint(0, 11)},
         "numbers": {"+1202555%04d" % i: {}}}
    if st in ("submitted", "pending") and random.random() < 0.5: d["transfer_date"] = now + random.randint(-5*DAY, 30*DAY)
    if st in ("scheduled", "completed"): d["scheduled_date"] = at
    return d
for name in (sys.argv[2:] or list(desk["views"]) + ["listing_by_group"]):
    db = "/idx_" + name
    try: req("DELETE", db)
    except Exception: pass
    req("PUT", db)
    random.seed(1)
    docs = [doc(i) for i in range(20000)]
    for k in range(0, len(docs), 2000): req("POST", db + "/_bulk_docs", {"docs": docs[k:k+2000]})
    views = desk["views"] if name in desk["views"] else own["views"]
    req("PUT", db + "/_design/d", {"views": {name: views[name]}})
    t = time.time(); req("GET", db + f"/_design/d/_view/{name}?limit=1&reduce=false"); el = time.time() - t
    info = req("GET", db + "/_design/d/_info")
    print(f"{name}: {el:.1f} s, {info['view_index']['sizes']['active']/1e6:.1f} MB", flush=True)
