#!/usr/bin/env python3
"""One request to portwarden's local API, run inside the client namespace by the tests.

    api_client.py METHOD PATH [JSON-BODY] [--base http://127.0.0.1:817]

Prints one JSON object: {"status": HTTP status, "body": the decoded JSON body or null,
"elapsed": seconds}. A connection failure prints {"status": 0, "error": "..."}. Standard
library only.
"""

import argparse
import http.client
import json
import sys
import time
import urllib.parse


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("method")
    parser.add_argument("path")
    parser.add_argument("body", nargs="?")
    parser.add_argument("--base", default="http://127.0.0.1:817")
    parser.add_argument("--timeout", type=float, default=10.0)
    args = parser.parse_args()
    base = urllib.parse.urlsplit(args.base)
    started = time.monotonic()
    try:
        connection = http.client.HTTPConnection(base.hostname, base.port, timeout=args.timeout)
        headers = {"Host": base.netloc}
        payload = None
        if args.body is not None:
            payload = args.body.encode()
            headers["Content-Type"] = "application/json"
        connection.request(args.method, args.path, body=payload, headers=headers)
        response = connection.getresponse()
        raw = response.read()
        body = json.loads(raw) if raw else None
        print(json.dumps({"status": response.status, "body": body,
                          "elapsed": time.monotonic() - started}))
    except (OSError, http.client.HTTPException, json.JSONDecodeError) as error:
        print(json.dumps({"status": 0, "error": f"{type(error).__name__}: {error}",
                          "elapsed": time.monotonic() - started}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
