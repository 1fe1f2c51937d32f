"""Reference for the feed export benchmark: the hourly loop of the "Extracting Your Data" example
(shared/seeds/001), sequential with requests + json, writing NDJSON through gzip at the given level.

Prints one JSON line: {"records": n, "wall_seconds": s, "cpu_seconds": s}.
"""
import argparse
import gzip
import json
import resource
import time

import requests


def main():
    parser = argparse.ArgumentParser()
    for name in ("base-url", "corp", "site", "email", "token", "from", "until", "out"):
        parser.add_argument("--" + name, required=True)
    parser.add_argument("--level", type=int, default=6)
    args = parser.parse_args()

    started = time.monotonic()
    headers = {"Content-type": "application/json", "x-api-user": args.email, "x-api-token": args.token}
    url = args.base_url + "/api/v0/corps/%s/sites/%s/feed/requests?from=%s&until=%s" % (
        args.corp, args.site, getattr(args, "from"), args.until)
    records = 0
    with gzip.open(args.out, "wb", compresslevel=args.level) as out:
        while True:
            response_raw = requests.get(url, headers=headers)
            response_raw.raise_for_status()
            response = json.loads(response_raw.text)
            for request in response["data"]:
                out.write((json.dumps(request) + "\n").encode())
                records += 1
            next_url = response["next"]["uri"]
            if next_url == "":
                break
            url = args.base_url + next_url
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({"records": records, "wall_seconds": time.monotonic() - started,
                      "cpu_seconds": usage.ru_utime + usage.ru_stime}))


if __name__ == "__main__":
    main()
