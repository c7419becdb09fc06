"""The wire protocol between ``evl net`` on a workstation and ``evl net-agent`` on a board.

Framing: one compact JSON object per line (UTF-8, ``\\n``-terminated; the
encoder never emits a raw newline, since JSON escapes it inside strings).

Requests and replies::

    {"id": 7, "op": "stat.get", "args": {"ifname": "eth0.42"}}
    {"id": 7, "ok": true, "result": {...}}
    {"id": 7, "ok": false, "error": {"code": "ENODEV", "errno": 19, "msg": "No such device"}}

A reply may carry ``"log"``: the kernel log lines the operation printed (the
simulator's console), which the client shows as local use would.  An error
may carry ``"detail"``, the kernel's explanation.  A frame that cannot be read
(malformed, too big, too deep) gets an error reply whose ``id`` is ``null``,
unless its ``id`` could be read.

The first request of a session must be ``hello``: the client's protocol
range in, the agent's chosen version, EVL ABI range, capabilities (the
operations it serves) and limits out.  Operations are an allowlist: exactly
the transport-level operations of :class:`evl_net.transports.Transport`,
each with a fixed argument schema (every key required, no other key).

Frames over 1 MiB are read only for ``bpf.load`` (up to 4 MiB), and only when
``"op"`` comes before ``"args"`` in the frame (within its first 512 bytes), as
:func:`request_frame` writes it: the agent tells a large frame's operation
before parsing it.

The parser is strict: duplicate keys, non-finite or overlong numbers, lone
surrogates, nesting deeper than :data:`MAX_DEPTH`, frames over the caps, ids
that are not small integers or short strings are all refused with a
:class:`ProtocolError`, never another exception.
"""

from __future__ import annotations

import errno as _errno
import json
import math
import re

from evl_core.record import field, record
from evl_net.transports.contract import PRIMITIVES, wire_key

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from typing import Any

#: Protocol versions this code speaks (inclusive range).  Version 2: the
#: operations are the transport contract's primitives, reads answer
#: ``{"value"}`` in the records' JSON form, and error objects may carry
#: ``"stage"`` (the C tool's words for the step that failed).
PROTO_MIN = 2
PROTO_MAX = 2

MIB = 1 << 20
#: Largest frame (without its newline) of every operation but ``bpf.load``, and of every reply.
MAX_FRAME = 1 * MIB
#: Largest ``bpf.load`` frame: a MAX_BPF object in base64 (4/3) plus the envelope.
MAX_BPF_FRAME = 4 * MIB
#: Largest eBPF object (raw bytes) the agent accepts.
MAX_BPF = 2 * MIB
#: Deepest nesting of arrays and objects in a frame (the envelope itself is depth 1).
MAX_DEPTH = 8
#: Most keys in one object, items in one array.
MAX_KEYS = 64
MAX_ITEMS = 4096
#: Largest integer anywhere in a frame (a u64 counter), and the longest number literal.
MAX_INT = 2**64 - 1
MAX_NUMBER_CHARS = 40
#: Ids: integers 0..2**53-1 (exact in every JSON implementation) or strings of 1..64 characters.
MAX_ID_INT = 2**53 - 1
MAX_ID_LEN = 64
#: Lengths of text arguments.
MAX_NAME = 255
MAX_LABEL = 4096
MAX_TEXT = 65536
MAX_MSG = 4096
MAX_LOG_LINES = 256

#: Default deadlines, in seconds.
IDLE_S = 60.0
FRAME_S = 10.0
REQUEST_S = 30.0

#: Error codes that are not errno names.
EDUPID = "EDUPID"
EVLERROR = "EVLERROR"
#: The board's mutation lock could not be had within the wait (errno EBUSY): nothing was done, and the
#: session goes on.  A kernel EBUSY (a busy device) keeps its own code.
LOCKED = "ELOCKED"

_CODE_RE = re.compile(r"^E[A-Z0-9]{1,15}$")
_HEX64_RE = re.compile(r"^[0-9a-f]{64}$")
_OP_RE = re.compile(rb'"op"\s*:\s*"([a-z._]{1,64})"')


class ProtocolError(Exception):
    """A frame that breaks the protocol; ``reply()`` is the error frame to answer it with."""

    def __init__(self, code: str, msg: str, id: Any = None, op: str | None = None) -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg
        self.id = id
        #: the operation of the allowlist the frame named, when it could be read (for the audit log)
        self.op = op

    @property
    def errno(self) -> int | None:
        return getattr(_errno, self.code, None) if self.code.startswith("E") else None

    def reply(self) -> bytes:
        return error_frame(self.id, self.code, self.msg)


# -- operations: the allowlist --------------------------------------------------

if TYPE_CHECKING:
    Validator = Callable[[str, Any], None]


def _fail(name: str, what: str) -> ProtocolError:
    return ProtocolError("EINVAL", f"argument '{name}': {what}")


def _text(limit: int, printable: bool = False, nullable: bool = False, nonempty: bool = True) -> Validator:
    def check(name: str, value: Any) -> None:
        if value is None and nullable:
            return
        if not isinstance(value, str):
            raise _fail(name, "expected a string" + (" or null" if nullable else ""))
        if len(value) > limit or (nonempty and not value):
            raise _fail(name, f"expected 1..{limit} characters" if nonempty else f"at most {limit} characters")
        if "\x00" in value or (printable and not value.isprintable()):
            raise _fail(name, "control characters are not allowed")

    return check


def _uint(limit: int) -> Validator:
    def check(name: str, value: Any) -> None:
        if type(value) is not int or not 0 <= value <= limit:
            raise _fail(name, f"expected an integer in 0..{limit}")

    return check


def _hex64(name: str, value: Any) -> None:
    if not isinstance(value, str) or not _HEX64_RE.fullmatch(value):
        raise _fail(name, "expected 64 lowercase hexadecimal digits")


def _proto_range(name: str, value: Any) -> None:
    if (
        not isinstance(value, list)
        or len(value) != 2
        or any(type(v) is not int for v in value)
        or not 1 <= value[0] <= value[1] <= 65535
    ):
        raise _fail(name, "expected [min, max] protocol versions, 1 <= min <= max <= 65535")


def _seconds(limit: float) -> Validator:
    def check(name: str, value: Any) -> None:
        if type(value) not in (int, float) or not math.isfinite(value) or not 0 < value <= limit:
            raise _fail(name, f"expected seconds in (0, {limit:g}]")

    return check


IFNAME = _text(MAX_NAME)


@record(frozen=True)
class Op:
    """One operation of the allowlist: its argument schema and what it is."""

    name: str
    args: Mapping[str, Validator]
    mutation: bool = False
    max_frame: int = MAX_FRAME
    #: arguments a request may leave out
    optional: Mapping[str, Validator] = field(default_factory=dict)


def _validators(kind: tuple[Any, ...]) -> dict[str, Validator] | Validator:
    """The wire validator(s) of one argument kind of the transport contract."""
    if kind[0] == "name":
        return IFNAME
    if kind[0] == "name?":
        return _text(MAX_NAME, nullable=True)
    if kind[0] == "uint":
        return _uint(kind[1])
    if kind[0] == "text":
        return _text(kind[1], nonempty=False)
    if kind[0] == "object":  # an eBPF object travels as its size, digest and base64 text
        return {"size": _uint(MAX_INT), "sha256": _hex64, "data": _text(MAX_BPF_FRAME, nonempty=False)}
    raise ValueError(f"no wire form for argument kind {kind!r}")


def _op(primitive: Any) -> Op:
    args: dict[str, Validator] = {}
    large = False
    for arg in primitive.args:
        found = _validators(arg[1])
        if isinstance(found, dict):
            args.update(found)
            large = True
        else:
            args[wire_key(arg)] = found
    return Op(primitive.wire, args, primitive.mutates, MAX_BPF_FRAME if large else MAX_FRAME)


#: Hold (1) or release (0) the board's mutation lock for the rest of the session.
BOARD_LOCK = "board.lock"
#: The longest wait for the board's lock (another session's mutation or apply), on the board.  A client
#: asks for less (``lock_wait`` in hello) so that the wait always ends before its own request deadline.
LOCK_WAIT_S = 5.0


def client_lock_wait(timeout: float) -> float:
    """The lock wait a client with this request deadline asks for: a lock not had is then answered (busy)."""
    return min(LOCK_WAIT_S, timeout / 2)


def _ops() -> dict[str, Op]:

    table = [
        Op(
            "hello",
            {"proto": _proto_range, "client": _text(MAX_NAME, printable=True)},
            optional={"lock_wait": _seconds(3600)},
        )
    ]
    table += [_op(p) for p in PRIMITIVES]
    # The session's hold on the board's lock (evl net-config apply): no primitive, the session's own state.
    table.append(Op(BOARD_LOCK, {"hold": _uint(1)}))
    return {op.name: op for op in table}


#: The allowlist, derived from the transport contract: every primitive, plus ``hello``.
OPS: dict[str, Op] = _ops()

#: The operations a session may use after ``hello`` (the capabilities of a full agent).
CAPS = tuple(name for name in OPS if name != "hello")
#: Operations whose frames may exceed MAX_FRAME (they carry an eBPF object).
LARGE = frozenset(name for name, op in OPS.items() if op.max_frame > MAX_FRAME)


def encode_args(primitive: Any, values: Mapping[str, Any]) -> dict[str, Any]:
    """A primitive's Python arguments as its wire arguments (an object becomes size, digest, base64)."""
    out: dict[str, Any] = {}
    for arg in primitive.args:
        name, kind = arg[0], arg[1]
        if kind[0] == "object":
            import base64
            import hashlib

            obj = values[name]
            out.update(
                size=len(obj), sha256=hashlib.sha256(obj).hexdigest(), data=base64.b64encode(obj).decode("ascii")
            )
        else:
            out[wire_key(arg)] = values[name]
    return out


def decode_args(primitive: Any, args: Mapping[str, Any], max_bpf: int = MAX_BPF) -> dict[str, Any]:
    """A validated request's wire arguments as the primitive's Python arguments (objects checked first)."""
    out: dict[str, Any] = {}
    for arg in primitive.args:
        out[arg[0]] = bpf_object(args, max_bpf) if arg[1][0] == "object" else args[wire_key(arg)]
    return out


def is_mutation(op: str) -> bool:
    spec = OPS.get(op)
    return bool(spec and spec.mutation)


# -- strict JSON ----------------------------------------------------------------------


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    if len(pairs) > MAX_KEYS:
        raise ProtocolError("E2BIG", f"an object has more than {MAX_KEYS} keys")
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ProtocolError("EBADMSG", f"duplicate key {key!r}")
        out[key] = value
    return out


def _int(text: str) -> int:
    if len(text) > MAX_NUMBER_CHARS:
        raise ProtocolError("E2BIG", "a number literal is too long")
    return int(text)


def _float(text: str) -> float:
    if len(text) > MAX_NUMBER_CHARS:
        raise ProtocolError("E2BIG", "a number literal is too long")
    value = float(text)
    if not math.isfinite(value):
        raise ProtocolError("EBADMSG", "non-finite number")
    return value


def _constant(text: str) -> Any:
    raise ProtocolError("EBADMSG", f"{text} is not JSON")


_DECODER = json.JSONDecoder(object_pairs_hook=_pairs, parse_int=_int, parse_float=_float, parse_constant=_constant)


def _walk(value: Any, depth: int) -> None:
    """Depth, size and string checks the decoder does not make."""
    if depth > MAX_DEPTH:
        raise ProtocolError("EBADMSG", f"nested deeper than {MAX_DEPTH} levels")
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ProtocolError("EBADMSG", "a string holds a lone surrogate") from None
    elif isinstance(value, dict):
        for key, item in value.items():
            _walk(key, depth)
            _walk(item, depth + 1)
    elif isinstance(value, list):
        if len(value) > MAX_ITEMS:
            raise ProtocolError("E2BIG", f"an array has more than {MAX_ITEMS} items")
        for item in value:
            _walk(item, depth + 1)
    elif isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_INT:
        raise ProtocolError("E2BIG", "an integer is out of range")


def decode(line: bytes, limit: int = MAX_FRAME) -> dict[str, Any]:
    """One frame (without its newline) -> a JSON object, or ProtocolError."""
    if len(line) > limit:
        raise ProtocolError("E2BIG", f"frame of {len(line)} bytes exceeds {limit}")
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        raise ProtocolError("EBADMSG", "frame is not UTF-8") from None
    try:
        obj = _DECODER.decode(text)
    except ProtocolError:
        raise
    except RecursionError:
        raise ProtocolError("EBADMSG", f"nested deeper than {MAX_DEPTH} levels") from None
    except ValueError as exc:  # JSONDecodeError, and int() beyond sys.get_int_max_str_digits()
        raise ProtocolError("EBADMSG", f"malformed JSON: {str(exc)[:200]}") from None
    if not isinstance(obj, dict):
        raise ProtocolError("EBADMSG", "a frame must be a JSON object")
    _walk(obj, 1)
    return obj


def encode(obj: Mapping[str, Any]) -> bytes:
    """A frame: compact JSON, ASCII only (so no raw newline or invalid UTF-8), newline-terminated."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=True, allow_nan=False).encode("ascii") + b"\n"


def valid_id(value: Any) -> bool:
    if type(value) is int:
        return 0 <= value <= MAX_ID_INT
    return isinstance(value, str) and 0 < len(value) <= MAX_ID_LEN and value.isprintable()


# -- requests (agent side) ---------------------------------------------------------------


@record(frozen=True)
class Request:
    id: Any
    op: str
    args: dict[str, Any]

    @property
    def spec(self) -> Op:
        return OPS[self.op]


def parse_request(line: bytes) -> Request:
    """A request frame, checked against the envelope and the operation's schema."""
    if len(line) > MAX_FRAME:
        named = _OP_RE.search(line[:512])
        if named is None or named.group(1).decode() not in LARGE:
            raise ProtocolError("E2BIG", f"frame of {len(line)} bytes exceeds {MAX_FRAME}")
    obj = decode(line, MAX_BPF_FRAME)
    rid = obj.get("id")
    if not valid_id(rid):
        raise ProtocolError(
            "EBADMSG", f"'id' must be an integer in 0..{MAX_ID_INT} or a string of 1..{MAX_ID_LEN} characters"
        )
    extra = set(obj) - {"id", "op", "args"}
    if extra:
        raise ProtocolError("EBADMSG", f"unknown key {sorted(extra)[0]!r} in a request", rid)
    op = obj.get("op")
    if not isinstance(op, str):
        raise ProtocolError("EBADMSG", "'op' must be a string", rid)
    spec = OPS.get(op)
    if spec is None:
        raise ProtocolError("EOPNOTSUPP", f"unknown operation {op[:64]!r}", rid)
    if len(line) > spec.max_frame:
        raise ProtocolError("E2BIG", f"frame of {len(line)} bytes exceeds {spec.max_frame}", rid, op)
    args = obj.get("args", {})
    if not isinstance(args, dict):
        raise ProtocolError("EBADMSG", "'args' must be an object", rid, op)
    missing = [k for k in spec.args if k not in args]
    if missing:
        raise ProtocolError("EINVAL", f"{op}: missing argument {missing[0]!r}", rid, op)
    unknown = sorted(set(args) - set(spec.args) - set(spec.optional))
    if unknown:
        raise ProtocolError("EINVAL", f"{op}: unknown argument {unknown[0][:64]!r}", rid, op)
    for key, check in [*spec.args.items(), *spec.optional.items()]:
        if key not in args:
            continue
        try:
            check(key, args[key])
        except ProtocolError as exc:
            raise ProtocolError(exc.code, f"{op}: {exc.msg}", rid, op) from None
    return Request(rid, op, args)


def request_frame(rid: Any, op: str, args: Mapping[str, Any]) -> bytes:
    return encode({"id": rid, "op": op, "args": dict(args)})


def ok_frame(rid: Any, result: Mapping[str, Any], log: list[str] | None = None) -> bytes:
    frame: dict[str, Any] = {"id": rid, "ok": True, "result": result}
    if log:
        frame["log"] = log[-MAX_LOG_LINES:]
    return encode(frame)


def error_frame(
    rid: Any,
    code: str,
    msg: str,
    errno: int | None = None,
    detail: str | None = None,
    log: list[str] | None = None,
    stage: str | None = None,
) -> bytes:
    if errno is None and code.startswith("E"):
        errno = getattr(_errno, code, None)
    error: dict[str, Any] = {"code": code, "errno": errno, "msg": msg[:MAX_MSG]}
    if detail:
        error["detail"] = detail[:MAX_MSG]
    if stage:
        error["stage"] = stage[:MAX_MSG]
    frame: dict[str, Any] = {"id": rid, "ok": False, "error": error}
    if log:
        frame["log"] = log[-MAX_LOG_LINES:]
    return encode(frame)


def oserror_frame(rid: Any, exc: OSError, log: list[str] | None = None) -> bytes:
    """The reply for an operation that failed with an errno, keeping the kernel's detail and stage."""
    code = _errno.errorcode.get(exc.errno or 0, "EIO")
    stage = getattr(exc, "stage", None)
    return error_frame(
        rid, code, exc.strerror or str(exc), exc.errno or _errno.EIO, getattr(exc, "detail", None), log, stage
    )


# -- replies (client side) -----------------------------------------------------------------


@record(frozen=True)
class Reply:
    id: Any
    ok: bool
    result: dict[str, Any] | None
    error: dict[str, Any] | None
    log: list[str]


def parse_reply(line: bytes) -> Reply:
    obj = decode(line, MAX_FRAME)
    rid = obj.get("id")
    if rid is not None and not valid_id(rid):
        raise ProtocolError("EBADMSG", "reply with an invalid id")
    ok = obj.get("ok")
    if type(ok) is not bool:
        raise ProtocolError("EBADMSG", "reply without a boolean 'ok'")
    body = "result" if ok else "error"
    extra = set(obj) - {"id", "ok", body, "log"}
    if extra:
        raise ProtocolError("EBADMSG", f"unknown key {sorted(extra)[0]!r} in a reply")
    payload = obj.get(body)
    if not isinstance(payload, dict):
        raise ProtocolError("EBADMSG", f"reply without an object '{body}'")
    log = obj.get("log", [])
    if not isinstance(log, list) or len(log) > MAX_LOG_LINES or not all(isinstance(x, str) for x in log):
        raise ProtocolError("EBADMSG", "'log' must be a list of strings")
    if not ok:
        code, num, msg = payload.get("code"), payload.get("errno"), payload.get("msg")
        detail, stage = payload.get("detail"), payload.get("stage")
        if (
            not isinstance(code, str)
            or not _CODE_RE.fullmatch(code)
            or not isinstance(msg, str)
            or not (num is None or (type(num) is int and 0 < num < 4096))
            or not (detail is None or isinstance(detail, str))
            or not (stage is None or (isinstance(stage, str) and stage.isprintable()))
            or set(payload) - {"code", "errno", "msg", "detail", "stage"}
        ):
            raise ProtocolError("EBADMSG", "malformed error object")
    return Reply(rid, ok, payload if ok else None, None if ok else payload, log)


# -- hello -------------------------------------------------------------------------------


def hello_args(client: str, lock_wait: float | None = None) -> dict[str, Any]:
    """The hello of a client; ``lock_wait``: how long the agent may wait for the board's lock per request."""
    args: dict[str, Any] = {"proto": [PROTO_MIN, PROTO_MAX], "client": client}
    if lock_wait is not None:
        args["lock_wait"] = lock_wait
    return args


def choose_version(theirs: list[int]) -> int | None:
    """The highest version both sides speak, or None."""
    low, high = max(PROTO_MIN, theirs[0]), min(PROTO_MAX, theirs[1])
    return high if low <= high else None


def check_hello(result: Mapping[str, Any]) -> dict[str, Any]:
    """Validate an agent's hello result (client side); ProtocolError('EPROTONOSUPPORT') if unusable."""
    proto = result.get("proto")
    if type(proto) is not int or not PROTO_MIN <= proto <= PROTO_MAX:
        raise ProtocolError(
            "EPROTONOSUPPORT", f"the agent chose protocol {proto!r}; this client speaks {PROTO_MIN}..{PROTO_MAX}"
        )
    caps = result.get("caps")
    if not isinstance(caps, list) or not all(isinstance(c, str) for c in caps):
        raise ProtocolError("EBADMSG", "hello without a list of capabilities")
    limits = result.get("limits")
    if not isinstance(limits, dict) or not all(type(v) in (int, float) for v in limits.values()):
        raise ProtocolError("EBADMSG", "hello without limits")
    abi = result.get("abi")
    if not isinstance(abi, dict):
        raise ProtocolError("EBADMSG", "hello without the EVL ABI range")
    return dict(result)


# -- eBPF objects --------------------------------------------------------------------------


def bpf_args(ifname: str, obj: bytes, name: str) -> dict[str, Any]:
    import base64
    import hashlib

    return {
        "ifname": ifname,
        "name": name,
        "size": len(obj),
        "sha256": hashlib.sha256(obj).hexdigest(),
        "data": base64.b64encode(obj).decode("ascii"),
    }


def bpf_object(args: Mapping[str, Any], max_bpf: int = MAX_BPF) -> bytes:
    """The object of a ``bpf.load`` request, checked (cap, size, encoding, digest) before anyone loads it."""
    import base64
    import binascii
    import hashlib

    size, data = args["size"], args["data"]
    if size > max_bpf:
        raise ProtocolError("E2BIG", f"eBPF object of {size} bytes exceeds the board's limit of {max_bpf}")
    if len(data) != 4 * ((size + 2) // 3):
        raise ProtocolError("EINVAL", f"eBPF object: {len(data)} base64 characters cannot hold {size} bytes")
    try:
        obj = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise ProtocolError("EINVAL", "eBPF object: invalid base64") from None
    if len(obj) != size:
        raise ProtocolError("EINVAL", f"eBPF object: {len(obj)} bytes received, {size} announced")
    if hashlib.sha256(obj).hexdigest() != args["sha256"]:
        raise ProtocolError("EBADMSG", "eBPF object: sha256 digest mismatch")
    return obj
