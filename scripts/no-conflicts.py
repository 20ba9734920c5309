#!/usr/bin/env python3
"""Fails when any document of a CouchDB server carries _conflicts.

usage: no-conflicts.py URL   (credentials may be in the URL)
Every database but the system ones is read through _all_docs with include_docs and conflicts.
"""
import base64, json, sys, urllib.parse, urllib.request

url = urllib.parse.urlsplit(sys.argv[1].split(",")[0])
base = f"{url.scheme}://{url.hostname}:{url.port}"
headers = {}
if url.username:
    creds = f"{urllib.parse.unquote(url.username)}:{urllib.parse.unquote(url.password or '')}"
    headers["Authorization"] = "Basic " + base64.b64encode(creds.encode()).decode()


def get(path):
    req = urllib.request.Request(base + path, headers=headers)
    with urllib.request.urlopen(req, timeout=120) as resp:
        return json.load(resp)


found = []
checked = 0
for db in get("/_all_dbs"):
    if db.startswith("_"):
        continue
    q = urllib.parse.quote(db, safe="")
    start = None
    while True:
        params = {"include_docs": "true", "conflicts": "true", "limit": "1001"}
        if start is not None:
            params["start_key"] = json.dumps(start)
        rows = get(f"/{q}/_all_docs?" + urllib.parse.urlencode(params))["rows"]
        for row in rows[:1000]:
            checked += 1
            doc = row.get("doc") or {}
            if doc.get("_conflicts"):
                found.append(f"{db}/{row['id']}: {doc['_conflicts']}")
        if len(rows) <= 1000:
            break
        start = rows[1000]["key"]
if found:
    print(f"{len(found)} documents carry conflicts:", *found[:50], sep="\n  ")
    sys.exit(1)
print(f"no conflicts in {checked} documents")
