"""The remote protocol's frame parser: strict, total (only ProtocolError escapes), and property-tested."""

from __future__ import annotations

import base64
import hashlib
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from evl_net.errors import KernelError
from evl_net.transports.remote import protocol
from evl_net.transports.remote.protocol import MAX_BPF_FRAME, MAX_FRAME, OPS, ProtocolError

#: At least 2000 examples per property, every run (the test bar).
EXAMPLES = settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def refused(line: bytes, code: str | None = None) -> ProtocolError:
    with pytest.raises(ProtocolError) as info:
        protocol.parse_request(line)
    if code is not None:
        assert info.value.code == code, info.value.msg
    return info.value


def frame(obj) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def check_refusal(exc: ProtocolError) -> None:
    """A refusal always turns into a well-formed error reply."""
    reply = protocol.parse_reply(exc.reply()[:-1])
    assert reply.ok is False and reply.error["code"] == exc.code
    assert exc.reply().count(b"\n") == 1 and exc.reply().endswith(b"\n")


# -- the cases of the test bar -------------------------------------------------------------------

GOOD = {"id": 1, "op": "stat.get", "args": {"ifname": "eth0.42"}}


def test_a_valid_request():
    req = protocol.parse_request(frame(GOOD))
    assert (req.id, req.op, req.args) == (1, "stat.get", {"ifname": "eth0.42"})


@pytest.mark.parametrize(
    "line, code",
    [
        (b"", "EBADMSG"),
        (b"{", "EBADMSG"),
        (b"not json", "EBADMSG"),
        (b"[1,2]", "EBADMSG"),  # not an object
        (b'"text"', "EBADMSG"),
        (b"\xff\xfe{}", "EBADMSG"),  # not UTF-8
        ("\ufeff".encode() + frame(GOOD), "EBADMSG"),  # a BOM
        (frame({"op": "stat.get", "args": {"ifname": "x"}}), "EBADMSG"),  # no id
        (frame({"id": 1.5, "op": "vlans.get", "args": {}}), "EBADMSG"),  # float id
        (frame({"id": True, "op": "vlans.get", "args": {}}), "EBADMSG"),  # bool id
        (frame({"id": 2**53, "op": "vlans.get", "args": {}}), "EBADMSG"),  # huge id
        (frame({"id": -1, "op": "vlans.get", "args": {}}), "EBADMSG"),
        (frame({"id": "x" * 65, "op": "vlans.get", "args": {}}), "EBADMSG"),
        (frame({"id": [1], "op": "vlans.get", "args": {}}), "EBADMSG"),
        (b'{"id":1e999,"op":"vlans.get","args":{}}', "EBADMSG"),  # -> inf
        (b'{"id":NaN,"op":"vlans.get","args":{}}', "EBADMSG"),
        (b'{"id":1,"op":"vlans.get","args":{"x":Infinity}}', "EBADMSG"),
        (b'{"id":' + b"9" * 5000 + b',"op":"vlans.get","args":{}}', "E2BIG"),  # 5000 digits
        (b'{"id":1,"op":"vlans.set","args":{"text":"\\ud800"}}', "EBADMSG"),  # lone surrogate
        (b'{"id":1,"op":"vlans.get","args":{},"id":2}', "EBADMSG"),  # duplicate key
        (b'{"id":2,"op":{"id":1}}', "EBADMSG"),  # op of the wrong type
        (frame({"id": 1, "op": ["stat.get"], "args": {}}), "EBADMSG"),
        (frame({"id": 1, "op": "exec", "args": {"cmd": "reboot"}}), "EOPNOTSUPP"),  # no generic dispatch
        (frame({"id": 1, "op": "__init__", "args": {}}), "EOPNOTSUPP"),
        (frame({"id": 1, "op": "stat.get", "args": []}), "EBADMSG"),
        (frame({"id": 1, "op": "stat.get", "args": {}}), "EINVAL"),  # missing argument
        (frame({"id": 1, "op": "stat.get", "args": {"ifname": "eth0", "path": "/etc/shadow"}}), "EINVAL"),
        (frame({"id": 1, "op": "stat.get", "args": {"ifname": 42}}), "EINVAL"),
        (frame({"id": 1, "op": "stat.get", "args": {"ifname": "eth\u00000"}}), "EINVAL"),
        (
            frame({"id": 1, "op": "port.enable", "args": {"ifname": "eth0", "pool_size": -1, "buffer_size": 0}}),
            "EINVAL",
        ),
        (
            frame({"id": 1, "op": "port.enable", "args": {"ifname": "eth0", "pool_size": True, "buffer_size": 0}}),
            "EINVAL",
        ),
        (frame({"id": 1, "op": "solicit", "args": {"host": "h", "ifname": None, "flags": 2**32}}), "EINVAL"),
        (frame({"id": 1, "op": "hello", "args": {"proto": [2, 1], "client": "c"}}), "EINVAL"),
        (frame({"id": 1, "op": "stat.get", "args": {"ifname": "eth0"}, "extra": 1}), "EBADMSG"),
        (b"[" * 100_000, "EBADMSG"),  # deep nesting
        (b'{"id":1,"op":"vlans.get","args":{"a":' + b"[" * 100_000 + b"]" * 100_000 + b"}}", "EBADMSG"),
        (b'{"id":1,"op":"vlans.get","args":{"a":[[[[[[[[[1]]]]]]]]]}}', "EBADMSG"),  # deeper than MAX_DEPTH
    ],
)
def test_malformed_frames_are_refused(line, code):
    check_refusal(refused(line, code))


def test_the_id_is_kept_when_it_could_be_read():
    exc = refused(frame({"id": 9, "op": "stat.get", "args": {"ifname": 1}}), "EINVAL")
    assert exc.id == 9 and protocol.parse_reply(exc.reply()[:-1]).id == 9
    assert refused(b'{"id":2,"op":{"id":1}}').id == 2
    assert refused(b"[1]").id is None


def test_oversized_frames():
    pad = "x" * (MAX_FRAME + 1)
    check_refusal(refused(frame({"id": 1, "op": "vlans.set", "args": {"text": pad}}), "E2BIG"))
    # A frame above 1 MiB is only allowed for bpf.load, up to 4 MiB.
    obj = b"\x7fELF" + b"\0" * (MAX_FRAME + 100)
    big = protocol.request_frame(1, "bpf.load", protocol.bpf_args("eth0", obj, "netrx.o"))[:-1]
    assert MAX_FRAME < len(big) < MAX_BPF_FRAME
    assert protocol.parse_request(big).op == "bpf.load"
    # Lying about the op does not buy the bigger cap.
    lie = big.replace(b'"op":"bpf.load"', b'"op":"vlans.set"')
    check_refusal(refused(lie, "E2BIG"))
    huge = protocol.request_frame(1, "bpf.load", protocol.bpf_args("eth0", b"\0" * (3 * 2**20 + 10), "x"))[:-1]
    assert len(huge) > MAX_BPF_FRAME
    check_refusal(refused(huge, "E2BIG"))


def test_encode_is_one_compact_ascii_line():
    out = protocol.encode({"id": 1, "ok": True, "result": {"text": "a\nb\u2028\u00e9", "n": 1}})
    assert out.count(b"\n") == 1 and out.endswith(b"\n") and out.isascii() and b" " not in out
    with pytest.raises(ValueError):
        protocol.encode({"x": float("nan")})


# -- replies --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "line",
    [
        b'{"id":1,"ok":"yes","result":{}}',
        b'{"id":1,"ok":true}',
        b'{"id":1,"ok":true,"result":[]}',
        b'{"id":1,"ok":false,"error":{"code":"ENODEV","errno":19}}',
        b'{"id":1,"ok":false,"error":{"code":"enodev","errno":19,"msg":"x"}}',
        b'{"id":1,"ok":false,"error":{"code":"ENODEV","errno":-1,"msg":"x"}}',
        b'{"id":1,"ok":true,"result":{},"log":"x"}',
        b'{"id":1,"ok":true,"result":{},"extra":1}',
        b'{"id":true,"ok":true,"result":{}}',
    ],
)
def test_malformed_replies(line):
    with pytest.raises(ProtocolError):
        protocol.parse_reply(line)


def test_replies_round_trip():
    reply = protocol.parse_reply(protocol.ok_frame(3, {"a": 1}, ["[    1.000000] x"])[:-1])
    assert (reply.id, reply.ok, reply.result, reply.log) == (3, True, {"a": 1}, ["[    1.000000] x"])
    err = OSError(19, "No such device")
    err.detail = "eth9 is not a port"
    reply = protocol.parse_reply(protocol.oserror_frame(4, err)[:-1])
    assert reply.error == {"code": "ENODEV", "errno": 19, "msg": "No such device", "detail": "eth9 is not a port"}


# -- hello and versions ------------------------------------------------------------------------------


def test_stage_travels():
    exc = KernelError(19, stage="cannot open out-of-band port eth9")
    frame = protocol.oserror_frame(1, exc)
    assert json.loads(frame)["error"]["stage"] == "cannot open out-of-band port eth9"
    reply = protocol.parse_reply(frame.rstrip(b"\n"))
    assert reply.error["stage"] == "cannot open out-of-band port eth9"
    with pytest.raises(ProtocolError):
        protocol.parse_reply(protocol.error_frame(1, "ENODEV", "x", stage="a\nb").rstrip(b"\n"))


def test_version_negotiation():
    assert protocol.choose_version([1, 1]) is None  # version 1 answered reads in another form
    assert protocol.choose_version([1, 9]) == protocol.PROTO_MAX == 2
    assert protocol.choose_version([protocol.PROTO_MAX + 1, 9]) is None
    good = {"proto": 2, "caps": ["stat.get"], "limits": {"max_frame": 1}, "abi": {"base": 45, "current": 45}}
    assert protocol.check_hello(good)["proto"] == 2
    with pytest.raises(ProtocolError) as info:
        protocol.check_hello(dict(good, proto=1))
    with pytest.raises(ProtocolError) as info:
        protocol.check_hello(dict(good, proto=protocol.PROTO_MAX + 1))
    assert info.value.code == "EPROTONOSUPPORT"
    for bad in ({**good, "caps": "all"}, {**good, "limits": None}, {k: v for k, v in good.items() if k != "abi"}):
        with pytest.raises(ProtocolError):
            protocol.check_hello(bad)


# -- eBPF objects ---------------------------------------------------------------------------------


def bpf(obj: bytes, **override):
    args = protocol.bpf_args("eth0.42", obj, "netrx.o")
    args.update(override)
    return args


def bpf_refusal(args, max_bpf=protocol.MAX_BPF) -> str:
    with pytest.raises(ProtocolError) as info:
        protocol.bpf_object(args, max_bpf)
    return info.value.code


def test_bpf_object_checks():
    obj = bytes(range(256)) * 8
    assert protocol.bpf_object(bpf(obj)) == obj
    assert bpf_refusal(bpf(obj, sha256=hashlib.sha256(b"other").hexdigest())) == "EBADMSG"
    assert bpf_refusal(bpf(obj, size=len(obj) - 1)) == "EINVAL"  # size field lying
    assert bpf_refusal(bpf(obj, size=len(obj) + 3)) == "EINVAL"
    assert bpf_refusal(bpf(obj), max_bpf=len(obj) - 1) == "E2BIG"  # over the board's cap
    assert bpf_refusal(bpf(obj, data="!" * len(bpf(obj)["data"]))) == "EINVAL"  # not base64
    # Padding tricks: right length, wrong content.
    data = base64.b64encode(obj[:-1]).decode() + "="
    assert len(data) != len(bpf(obj)["data"]) or bpf_refusal(bpf(obj, data=data))


def test_a_2mib_object_round_trips():
    obj = hashlib.sha256(b"seed").digest() * (protocol.MAX_BPF // 32)
    assert len(obj) == protocol.MAX_BPF
    line = protocol.request_frame(5, "bpf.load", protocol.bpf_args("eth0.42", obj, "big.o"))[:-1]
    req = protocol.parse_request(line)
    assert protocol.bpf_object(req.args) == obj


# -- properties (hypothesis) ----------------------------------------------------------------------------


def total(line: bytes) -> None:
    """parse_request is total: a Request or a ProtocolError (with a well-formed reply), nothing else."""
    try:
        req = protocol.parse_request(line)
    except ProtocolError as exc:
        check_refusal(exc)
        return
    assert req.op in OPS and protocol.valid_id(req.id)
    assert set(req.args) == set(OPS[req.op].args)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=25,
)
ids = st.one_of(
    st.integers(min_value=-5, max_value=2**54),
    st.text(max_size=70),
    st.booleans(),
    st.none(),
    st.floats(allow_nan=True),
    json_values,
)
op_names = st.one_of(st.sampled_from(sorted(OPS)), st.text(max_size=12), json_values)


def _args_for(op: str):
    spec = OPS[op]
    name = st.text(min_size=1, max_size=16).filter(lambda s: "\x00" not in s)
    values = {
        "ifname": name,
        "host": name,
        "pool_size": st.integers(min_value=0, max_value=2**32 - 1),
        "buffer_size": st.integers(min_value=0, max_value=2**64 - 1),
        "flags": st.integers(min_value=0, max_value=3),
        "text": st.text(max_size=30).filter(lambda s: "\x00" not in s),
        "proto": st.tuples(st.integers(1, 3), st.integers(3, 5)).map(list),
        "client": st.text(min_size=1, max_size=10).filter(str.isprintable),
        "name": st.text(max_size=20).filter(lambda s: "\x00" not in s),
        "size": st.just(0),
        "sha256": st.just(hashlib.sha256(b"").hexdigest()),
        "data": st.just(""),
        "parent": name,
        "vlan_id": st.integers(min_value=0, max_value=4094),
        "mtu": st.integers(min_value=0, max_value=65535),
        "up": st.integers(min_value=0, max_value=1),
        "address": st.text(max_size=18).filter(lambda s: "\x00" not in s),
        "hold": st.integers(min_value=0, max_value=1),
    }
    return st.fixed_dictionaries({k: values[k] for k in spec.args})


valid_ids = st.one_of(st.integers(0, protocol.MAX_ID_INT), st.text(min_size=1, max_size=64).filter(str.isprintable))
valid_requests = st.sampled_from(sorted(OPS)).flatmap(lambda op: st.tuples(valid_ids, st.just(op), _args_for(op)))


@EXAMPLES
@given(st.binary(max_size=600))
def test_property_any_bytes(line):
    total(line)


@EXAMPLES
@given(json_values)
def test_property_any_json_value(value):
    total(json.dumps(value, allow_nan=True).encode())


@EXAMPLES
@given(st.fixed_dictionaries({"id": ids, "op": op_names}, optional={"args": json_values, "extra": json_values}))
def test_property_any_envelope(obj):
    total(json.dumps(obj, allow_nan=True).encode())


@EXAMPLES
@given(valid_requests)
def test_property_valid_requests_round_trip(request):
    rid, op, args = request
    line = protocol.request_frame(rid, op, args)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    req = protocol.parse_request(line[:-1])
    assert (req.id, req.op, req.args) == (rid, op, args)


@EXAMPLES
@given(valid_requests, st.data())
def test_property_mutated_valid_frames(request, data):
    rid, op, args = request
    line = bytearray(json.dumps({"id": rid, "op": op, "args": args}).encode())
    for _ in range(data.draw(st.integers(1, 4))):
        kind = data.draw(st.sampled_from(["flip", "insert", "delete"]))
        pos = data.draw(st.integers(0, len(line)))
        if kind == "insert":
            line[pos:pos] = data.draw(st.binary(min_size=1, max_size=3))
        elif line and pos < len(line):
            if kind == "flip":
                line[pos] ^= data.draw(st.integers(1, 255))
            else:
                del line[pos]
    total(bytes(line))


@EXAMPLES
@given(st.binary(max_size=400))
def test_property_replies_are_total(line):
    try:
        protocol.parse_reply(line)
    except ProtocolError:
        pass


@EXAMPLES
@given(
    st.lists(st.binary(max_size=40).map(lambda b: b.replace(b"\n", b"")), max_size=8),
    st.lists(st.integers(1, 50), min_size=1, max_size=20),
    st.booleans(),
)
def test_property_framing_ignores_chunking(frames, cuts, trailing):
    """However the stream is cut into reads, the agent sees the same frames."""
    from collections import deque

    from evl_net.agent import session
    from evl_net.agent.session import Agent

    stream = b"".join(f + b"\n" for f in frames) + (b"partial" if trailing else b"")
    agent = Agent.__new__(Agent)  # only the framing state: no transport, no thread
    agent.buf, agent.pending, agent.discard, agent.frame_t0, agent.last_t = bytearray(), deque(), False, None, 0.0
    agent.queued = 0
    pos, i = 0, 0
    while pos < len(stream):
        step = cuts[i % len(cuts)]
        agent._feed(stream[pos : pos + step], 1.0)
        pos += step
        i += 1
    assert list(agent.pending) == frames
    assert agent.queued == sum(len(f) + session.FRAME_COST for f in frames)
    assert bytes(agent.buf) == (b"partial" if trailing else b"")
    assert (agent.frame_t0 is not None) == trailing
