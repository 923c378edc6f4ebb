"""`cabine appointment ...`, `cabine cabin ...`, `cabine certs`: the operator's commands, over the REST API.

They talk to a signaling server's /api/v1 with the operator API key (except `cabin enroll`, run on the cabin PC with
its one-time code). Every failure is one line on stderr, `cabine <command>: error: ...`, and exit code 1 (2 for
usage errors); never a traceback.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import ssl
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Final

from cabine.errors import CabineError

DEFAULT_SERVER: Final = "https://127.0.0.1:8443"
DEFAULT_API_KEY_FILE: Final = Path(".cabine/operator-key")
DEFAULT_CA_FILE: Final = Path(".cabine/certs/ca.crt")
DEFAULT_CERTS_DIR: Final = Path("certs/generated")
KINDS: Final = ("medical", "bank", "energy", "public-service")


class OperatorError(CabineError):
    """An operator command failed; the message is the one line shown to the user."""


class UsageError(OperatorError, ValueError):
    """The command line is wrong (exit code 2)."""


# --- talking to the API -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ApiClient:
    """A minimal JSON client for /api/v1 (urllib: no event loop needed for one request)."""

    server: str
    ssl_context: ssl.SSLContext | None
    api_key: str | None = None
    timeout: float = 15.0
    # How long a "503, retry after" (a cluster between two room nodes) is waited out.
    retry_for: float = 15.0

    def request(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        """Send one request and return the decoded JSON answer.

        Raises:
            OperatorError: the server is unreachable, its certificate is not trusted, or it refused the request.
        """
        data = None if body is None else json.dumps(body).encode()
        headers = {"Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        if self.api_key is not None:
            headers["Authorization"] = f"Bearer {self.api_key}"
        request = urllib.request.Request(
            self.server.rstrip("/") + "/api/v1" + path, data=data, method=method, headers=headers
        )
        deadline = time.monotonic() + self.retry_for
        while True:
            try:
                with urllib.request.urlopen(request, timeout=self.timeout, context=self.ssl_context) as response:
                    raw = response.read()
                break
            except urllib.error.HTTPError as exc:
                # A cluster changing its room node, or a balancer with no node ready yet, says "later" this way: the
                # request was not handled, so sending it again is safe.
                wait = _retry_after(exc)
                if wait is None or time.monotonic() + wait > deadline:
                    raise OperatorError(f"the server refused the request ({exc.code}): {_error_text(exc)}") from None
                time.sleep(wait)
            except urllib.error.URLError as exc:
                raise OperatorError(self._unreachable(exc.reason)) from None
            except (OSError, ssl.SSLError) as exc:  # timeouts and resets after the connection was made
                raise OperatorError(self._unreachable(exc)) from None
        try:
            return json.loads(raw)
        except ValueError:
            raise OperatorError(
                f"the server at {self.server} did not answer with JSON: is it a Cabine server?"
            ) from None

    def _unreachable(self, reason: object) -> str:
        if isinstance(reason, ssl.SSLCertVerificationError):
            return (
                f"cannot verify the certificate of {self.server} ({reason.verify_message}): "
                "pass --ca-file with the CA that signed it"
            )
        if isinstance(reason, TimeoutError):
            return f"no answer from {self.server} within {self.timeout:g} s"
        text = getattr(reason, "strerror", None) or str(reason)
        return f"cannot reach the server at {self.server}: {text}"


def _retry_after(exc: urllib.error.HTTPError) -> float | None:
    """Seconds to wait before sending again a request answered 503 with Retry-After (None: do not)."""
    if exc.code != 503:
        return None
    try:
        seconds = float(exc.headers.get("Retry-After", ""))
    except ValueError:
        return None
    return min(max(seconds, 0.1), 5.0)


def _error_text(exc: urllib.error.HTTPError) -> str:
    try:
        body = json.loads(exc.read())
    except (ValueError, OSError):
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        return str(body["error"])
    return str(exc.reason)


def _server(args: argparse.Namespace) -> str:
    """The server URL: --server, else $CABINE_SERVER, else the local default.

    Raises:
        UsageError: the URL is not http(s).
    """
    server = str(args.server or os.environ.get("CABINE_SERVER") or DEFAULT_SERVER)
    parsed = urllib.parse.urlsplit(server)
    if parsed.scheme not in ("https", "http") or not parsed.netloc:
        raise UsageError(f"--server must be an https:// (or http://) URL, got {server!r}")
    return server


def _ca_file(args: argparse.Namespace) -> Path | None:
    """The CA to trust: --ca-file, else .cabine/certs/ca.crt when present, else None (the system's)."""
    if args.ca_file is not None:
        return Path(args.ca_file)
    return DEFAULT_CA_FILE if DEFAULT_CA_FILE.is_file() else None


def _ssl_context(server: str, ca_file: Path | None) -> ssl.SSLContext | None:
    """A TLS context trusting `ca_file` (None: the system's), or None for plain http.

    Raises:
        OperatorError: the CA file cannot be read.
    """
    if not server.startswith("https://"):
        return None
    try:
        return ssl.create_default_context(cafile=None if ca_file is None else str(ca_file))
    except (OSError, ssl.SSLError) as exc:
        raise OperatorError(
            f"cannot read the CA certificate {ca_file}: {getattr(exc, 'strerror', None) or exc}"
        ) from None


def _api_key(args: argparse.Namespace) -> str:
    """The operator API key: --api-key-file, else $CABINE_API_KEY_FILE, else .cabine/operator-key.

    Raises:
        OperatorError: the key file is missing, unreadable or empty.
    """
    path = Path(args.api_key_file or os.environ.get("CABINE_API_KEY_FILE") or DEFAULT_API_KEY_FILE)
    try:
        key = path.read_text().strip()
    except OSError as exc:
        raise OperatorError(
            f"cannot read the operator API key from {path}: {exc.strerror}; "
            "pass --api-key-file (cabine serve writes it on first run)"
        ) from None
    if not key:
        raise OperatorError(f"the operator API key file {path} is empty")
    return key


def _client(args: argparse.Namespace, *, operator: bool = True) -> ApiClient:
    server = _server(args)
    return ApiClient(
        server=server,
        ssl_context=_ssl_context(server, _ca_file(args)),
        api_key=_api_key(args) if operator else None,
        timeout=args.timeout,
    )


# --- output -----------------------------------------------------------------------------------------------


def _local(text: str | None) -> str:
    """An API timestamp in the operator's local time, for reading."""
    if not text:
        return "-"
    return datetime.fromisoformat(text).astimezone().strftime("%Y-%m-%d %H:%M %z")


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    lines = [headers, *rows]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip() for line in lines)


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, ensure_ascii=False))


def _print_appointment(appointment: dict[str, Any]) -> None:
    fields = [
        ("id", appointment["id"]),
        ("kind", appointment["kind"]),
        ("cabin", appointment["cabin_id"]),
        ("professional", appointment["professional_name"]),
        ("starts", _local(appointment["starts_at"])),
        ("ends", _local(appointment["ends_at"])),
        ("link opens", _local(appointment["opens_at"])),
        ("status", f"cancelled {_local(appointment['cancelled_at'])}" if appointment["cancelled"] else "booked"),
        ("link", appointment.get("link") or "-"),
    ]
    for name, value in fields:
        print(f"{name + ':':<14}{value}")


# --- appointment ------------------------------------------------------------------------------------------


def _appointment_create(args: argparse.Namespace) -> int:
    body = {
        "kind": args.kind,
        "cabin_id": args.cabin,
        "starts_at": args.start,
        "duration_minutes": args.duration,
        "professional_name": args.professional,
    }
    appointment = _client(args).request("POST", "/appointments", body)
    if args.json:
        _print_json(appointment)
    else:
        print(appointment["link"])
    return 0


def _appointment_list(args: argparse.Namespace) -> int:
    query = {"cabin_id": args.cabin} if args.cabin else {}
    path = "/appointments" + (f"?{urllib.parse.urlencode(query)}" if query else "")
    appointments = _client(args).request("GET", path)["appointments"]
    if args.json:
        _print_json(appointments)
        return 0
    if not appointments:
        print("no appointments")
        return 0
    rows = [
        [
            a["id"],
            _local(a["starts_at"]),
            str(a["duration_minutes"]),
            a["kind"],
            a["cabin_id"],
            a["professional_name"],
            "cancelled" if a["cancelled"] else "booked",
        ]
        for a in appointments
    ]
    print(_table(["ID", "STARTS", "MIN", "KIND", "CABIN", "PROFESSIONAL", "STATUS"], rows))
    return 0


def _appointment_id(text: str) -> str:
    return urllib.parse.quote(text, safe="")


def _appointment_show(args: argparse.Namespace) -> int:
    appointment = _client(args).request("GET", f"/appointments/{_appointment_id(args.id)}")
    if args.json:
        _print_json(appointment)
    else:
        _print_appointment(appointment)
    return 0


def _appointment_cancel(args: argparse.Namespace) -> int:
    appointment = _client(args).request("POST", f"/appointments/{_appointment_id(args.id)}/cancel")
    if args.json:
        _print_json(appointment)
    else:
        print(
            f"cancelled {appointment['id']} ({appointment['professional_name']}, {_local(appointment['starts_at'])}, "
            f"cabin {appointment['cabin_id']}) at {_local(appointment['cancelled_at'])}"
        )
    return 0


# --- cabin ------------------------------------------------------------------------------------------------


def _print_code(args: argparse.Namespace, cabin: dict[str, Any], verb: str) -> None:
    server = _server(args)
    command = f"cabine cabin enroll --server {server} --cabin {cabin['id']} --code {cabin['enrollment_code']}"
    ca_file = _ca_file(args)
    print(
        f"Cabin {cabin['id']} {verb}. One-time enrollment code, valid until {_local(cabin['enrollment_expires_at'])}:"
    )
    print(f"  {cabin['enrollment_code']}")
    print("On the cabin PC, run:")
    if ca_file is not None:
        print(f"  {command} --ca-file ca.crt")
        print(f"(after copying {ca_file} to the cabin PC as ca.crt)")
    else:
        print(f"  {command}")


def _cabin_add(args: argparse.Namespace) -> int:
    cabin = _client(args).request("POST", "/cabins", {"id": args.id, "name": args.name})
    if args.json:
        _print_json(cabin)
    else:
        _print_code(args, cabin, "added")
    return 0


def _cabin_list(args: argparse.Namespace) -> int:
    cabins = _client(args).request("GET", "/cabins")["cabins"]
    if args.json:
        _print_json(cabins)
        return 0
    if not cabins:
        print("no cabins")
        return 0
    rows = [
        [
            c["id"],
            c["name"],
            _local(c["enrolled_at"]) if c["enrolled"] else "no",
            "disabled" if c["disabled"] else "enabled",
            "pending" if c["enrollment_pending"] else "-",
        ]
        for c in cabins
    ]
    print(_table(["ID", "NAME", "ENROLLED", "STATUS", "CODE"], rows))
    return 0


def _cabin_path(cabin_id: str, action: str) -> str:
    return f"/cabins/{urllib.parse.quote(cabin_id, safe='')}/{action}"


def _cabin_disable(args: argparse.Namespace) -> int:
    _client(args).request("POST", _cabin_path(args.id, "disable"))
    print(f"cabin {args.id} disabled: it cannot connect until `cabine cabin enable {args.id}`")
    return 0


def _cabin_enable(args: argparse.Namespace) -> int:
    _client(args).request("POST", _cabin_path(args.id, "enable"))
    print(f"cabin {args.id} enabled")
    return 0


def _print_selftest(report: dict[str, Any]) -> None:
    verdict = "passed" if report["ok"] else "FAILED"
    when = _local(report["finished_at"])
    asked = "at start-up" if report["request_id"] is None else "on request"
    print(f"cabin {report['cabin_id']}: self-test {verdict} ({asked}, finished {when})")
    rows = [
        [check["status"].upper() if check["status"] == "failed" else check["status"], check["name"], check["detail"]]
        + (["(not needed for a call)"] if not check["required"] else [""])
        for check in report["checks"]
    ]
    if rows:
        print(_table(["STATUS", "CHECK", "DETAIL", ""], rows))


def _cabin_selftest(args: argparse.Namespace) -> int:
    """Ask the connected cabin for a self-test now (or, with --last, show its latest report); exit 1 if it failed."""
    path = _cabin_path(args.id, "selftest")
    report = _client(args).request("GET" if args.last else "POST", path)
    if args.json:
        _print_json(report)
    else:
        _print_selftest(report)
    if not report["ok"]:
        failed = [c["name"] for c in report["checks"] if c["required"] and c["status"] == "failed"]
        raise OperatorError(f"cabin {args.id} failed its self-test" + (f": {', '.join(failed)}" if failed else ""))
    return 0


def _cabin_new_code(args: argparse.Namespace) -> int:
    cabin = _client(args).request("POST", _cabin_path(args.id, "enrollment"))
    if args.json:
        _print_json(cabin)
    else:
        _print_code(args, cabin, "has a new code (its current key works until the code is used)")
    return 0


def _cabin_enroll(args: argparse.Namespace) -> int:
    """Make this PC's key, have the server record its public half, and keep the private half (0600)."""
    from gateway.identity import CabinIdentity, default_key_file
    from signaling.tls import write_private

    key_file = Path(args.key_file) if args.key_file is not None else default_key_file()
    if key_file.exists() and not args.force:
        raise OperatorError(
            f"the cabin key {key_file} already exists: pass --force to replace it "
            "(the old key keeps working until the server accepts the new one)"
        )
    client = _client(args, operator=False)
    identity = CabinIdentity.generate(args.cabin)
    # Written beside its final place first, so that the key file appears only once the server has accepted it,
    # and a failure to write is found before the one-time code is spent.
    pending = key_file.with_name(f".{key_file.name}.{os.getpid()}.pending")
    try:
        write_private(pending, identity.private_file_bytes())
    except OSError as exc:
        raise OperatorError(f"cannot write the cabin key in {key_file.parent}: {exc.strerror}") from None
    try:
        public_key = base64.b64encode(identity.public_bytes()).decode()
        answer = client.request(
            "POST", "/enroll", {"cabin_id": args.cabin, "code": args.code, "public_key": public_key}
        )
        os.replace(pending, key_file)
    finally:
        pending.unlink(missing_ok=True)
    print(f"cabin {answer['cabin_id']} enrolled; its key is in {key_file} (keep it: it is this cabin's identity)")
    if answer.get("disabled"):
        print("the cabin is disabled on the server: ask the operator to enable it")
    ca = f" --ca-file {args.ca_file}" if args.ca_file is not None else ""
    print(f"run the gateway with: cabine gateway --server {client.server} --key-file {key_file}{ca}")
    return 0


# --- certs ------------------------------------------------------------------------------------------------


def _certs(args: argparse.Namespace) -> int:
    from signaling.tls import DEFAULT_NAMES, create_ca, create_server_certificate

    out = Path(args.out)
    names = tuple(dict.fromkeys(args.names or DEFAULT_NAMES))
    ca_cert, ca_key = out / "ca.crt", out / "ca.key"
    try:
        if ca_cert.exists() and ca_key.exists():
            print(f"reusing the CA in {out}")
        else:
            create_ca(out)
        cert, key = create_server_certificate(out, names, ca_cert=ca_cert, ca_key=ca_key)
    except OSError as exc:
        raise OperatorError(f"cannot write certificates in {out}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise OperatorError(f"cannot use the CA in {out}: {exc}") from None
    print(f"CA certificate:     {ca_cert}  (give it to cabins and operators: --ca-file)")
    print(f"CA private key:     {ca_key}  (keep it secret; only needed to issue more certificates)")
    print(f"server certificate: {cert}  (for {', '.join(names)})")
    print(f"server key:         {key}")
    print(f"serve with:  cabine serve --host 0.0.0.0 --cert {cert} --key {key}")
    print(f"on a cabin:  cabine cabin enroll --ca-file ca.crt ...  (a copy of {ca_cert})")
    return 0


# --- the parser -------------------------------------------------------------------------------------------


def _connection_options(parser: argparse.ArgumentParser, *, operator: bool = True) -> None:
    parser.add_argument("--server", help=f"signaling URL (default: $CABINE_SERVER or {DEFAULT_SERVER})")
    if operator:
        parser.add_argument(
            "--api-key-file",
            type=Path,
            help=f"file holding the operator API key (default: $CABINE_API_KEY_FILE or {DEFAULT_API_KEY_FILE})",
        )
    parser.add_argument(
        "--ca-file",
        type=Path,
        help=f"CA certificate to trust (default: {DEFAULT_CA_FILE} if present, else the system's)",
    )
    parser.add_argument("--timeout", type=float, default=15.0, help="seconds to wait for the server (default 15)")


def _leaf(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    help_text: str,
    handler: Callable[[argparse.Namespace], int],
    *,
    operator: bool = True,
    json_output: bool = True,
) -> argparse.ArgumentParser:
    parser = sub.add_parser(name, help=help_text, description=help_text)
    _connection_options(parser, operator=operator)
    if json_output:
        parser.add_argument("--json", action="store_true", help="print the server's JSON answer")
    parser.set_defaults(operator_handler=handler, operator_command=name)
    return parser


def _positive_minutes(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of minutes, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError("the duration must be at least 1 minute")
    return value


def add_operator_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `appointment`, `cabin` and `certs` to the `cabine` command."""
    appointment = sub.add_parser("appointment", help="book, list, show and cancel appointments")
    actions = appointment.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = _leaf(actions, "create", "book a cabin and print the professional's link", _appointment_create)
    create.add_argument("--kind", required=True, choices=KINDS, help="appointment kind")
    create.add_argument("--cabin", required=True, help="cabin id")
    create.add_argument("--start", required=True, help="start, ISO 8601 with a timezone: 2026-11-26T09:30+01:00")
    create.add_argument("--duration", required=True, type=_positive_minutes, help="minutes")
    create.add_argument("--professional", required=True, help="the professional's name, as the citizen will see it")
    listing = _leaf(actions, "list", "list appointments", _appointment_list)
    listing.add_argument("--cabin", help="only this cabin's")
    _leaf(actions, "show", "show an appointment and its link", _appointment_show).add_argument("id")
    _leaf(actions, "cancel", "cancel an appointment (its link stops working)", _appointment_cancel).add_argument("id")

    cabin = sub.add_parser("cabin", help="add, list, disable, enable and enroll cabins")
    actions = cabin.add_subparsers(dest="action", required=True, metavar="ACTION")
    add = _leaf(actions, "add", "register a cabin and print its one-time enrollment code", _cabin_add)
    add.add_argument("id", help="cabin id: letters, digits, '-', '_', '.'")
    add.add_argument("--name", default="", help="a readable name, e.g. 'Mairie de Petit-Quevilly'")
    _leaf(actions, "list", "list cabins", _cabin_list)
    _leaf(actions, "disable", "refuse a cabin's connections", _cabin_disable, json_output=False).add_argument("id")
    _leaf(actions, "enable", "accept a cabin's connections again", _cabin_enable, json_output=False).add_argument("id")
    _leaf(actions, "new-code", "a new enrollment code, e.g. for a replaced PC", _cabin_new_code).add_argument("id")
    selftest = _leaf(
        actions,
        "selftest",
        "run the connected cabin's self-test and print its report (exit 1 if it failed)",
        _cabin_selftest,
    )
    selftest.add_argument("id")
    selftest.add_argument("--last", action="store_true", help="show the latest report instead of asking for a new one")
    # The server waits up to 30 s for the cabin's answer.
    selftest.set_defaults(timeout=45.0)
    enroll = _leaf(
        actions,
        "enroll",
        "on the cabin PC: make its key and record it with the server",
        _cabin_enroll,
        operator=False,
        json_output=False,
    )
    enroll.add_argument("--cabin", required=True, help="this cabin's id")
    enroll.add_argument("--code", required=True, help="the one-time enrollment code from the operator")
    enroll.add_argument(
        "--key-file",
        type=Path,
        help="where to keep the key (default /etc/cabine/cabin.key if writable, else .cabine/cabin.key)",
    )
    enroll.add_argument("--force", action="store_true", help="replace an existing key file")

    certs = sub.add_parser("certs", help="create a local CA and a server certificate")
    certs.add_argument("--out", type=Path, default=DEFAULT_CERTS_DIR, help=f"directory (default {DEFAULT_CERTS_DIR})")
    certs.add_argument(
        "--name",
        action="append",
        dest="names",
        metavar="NAME",
        help="DNS name or IP address the server is reached at (repeat; default localhost, 127.0.0.1, ::1)",
    )
    certs.set_defaults(operator_handler=_certs, operator_command=None)


def run_operator_command(args: argparse.Namespace) -> int:
    """Run a command added by add_operator_commands; errors become one line on stderr and exit code 1 (2: usage)."""
    name = " ".join(part for part in (args.command, getattr(args, "operator_command", None)) if part)
    handler: Callable[[argparse.Namespace], int] = args.operator_handler
    try:
        return handler(args)
    except UsageError as exc:
        print(f"cabine {name}: error: {exc}", file=sys.stderr)
        return 2
    except OperatorError as exc:
        print(f"cabine {name}: error: {exc}", file=sys.stderr)
        return 1
