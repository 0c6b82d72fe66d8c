"""Signs one request with botocore's SigV4Auth at a fixed time, for tests/platforms_sigv4.rs.

Reads a JSON object on stdin: method, url, headers (an object), body (text), access_key_id,
secret_access_key, session_token (or null), region, service, unix (seconds since the epoch).
Prints the request's headers after signing, as a JSON object, on one line.
"""

import datetime
import json
import sys

import botocore.auth
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials


def main():
    spec = json.load(sys.stdin)
    fixed = datetime.datetime.fromtimestamp(spec["unix"], datetime.timezone.utc)

    def fixed_now(remove_tzinfo=True):
        return fixed.replace(tzinfo=None) if remove_tzinfo else fixed

    # add_auth reads the clock through botocore.auth.get_current_datetime (botocore >= 1.32);
    # pinned here so that the Rust signer can be asked for the same signature.
    botocore.auth.get_current_datetime = fixed_now
    credentials = Credentials(
        spec["access_key_id"], spec["secret_access_key"], spec["session_token"]
    )
    request = AWSRequest(
        method=spec["method"],
        url=spec["url"],
        headers=spec["headers"],
        data=spec["body"].encode(),
    )
    SigV4Auth(credentials, spec["service"], spec["region"]).add_auth(request)
    print(json.dumps({name.lower(): value for name, value in request.headers.items()}))


if __name__ == "__main__":
    main()
