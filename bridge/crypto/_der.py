"""Minimal strict DER (ITU-T X.690) encoder/decoder for SM2 keys and signatures.

Only what SM2 needs: SEQUENCE, INTEGER, OCTET STRING, BIT STRING, OBJECT IDENTIFIER,
and context-specific explicit tags. Parsing is strict (definite, minimal lengths and
minimal integers) so that malformed input is rejected rather than guessed at.
"""

from __future__ import annotations

SEQUENCE = 0x30
INTEGER = 0x02
BIT_STRING = 0x03
OCTET_STRING = 0x04
OID = 0x06


class DERError(ValueError):
    pass


def _encode_length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


def tlv(tag: int, value: bytes) -> bytes:
    return bytes([tag]) + _encode_length(len(value)) + value


def integer(n: int) -> bytes:
    if n < 0:
        raise DERError("negative INTEGER not supported")
    body = n.to_bytes(n.bit_length() // 8 + 1, "big")  # leading 0x00 keeps it positive
    return tlv(INTEGER, body)


def sequence(*items: bytes) -> bytes:
    return tlv(SEQUENCE, b"".join(items))


def oid(dotted: str) -> bytes:
    parts = [int(p) for p in dotted.split(".")]
    arcs = [40 * parts[0] + parts[1]] + parts[2:]
    body = bytearray()
    for arc in arcs:
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        body.extend(reversed(chunk))
    return tlv(OID, bytes(body))


def read_tlv(data: bytes, pos: int = 0) -> tuple[int, bytes, int]:
    """Read one TLV at pos; return (tag, value, position after it)."""
    if pos + 2 > len(data):
        raise DERError("truncated DER")
    tag = data[pos]
    if tag & 0x1F == 0x1F:
        raise DERError("multi-byte tags not supported")
    first = data[pos + 1]
    pos += 2
    if first < 0x80:
        length = first
    else:
        count = first & 0x7F
        if count == 0 or count > 4 or pos + count > len(data):
            raise DERError("bad DER length")
        length = int.from_bytes(data[pos:pos + count], "big")
        if length < 0x80 or data[pos] == 0:
            raise DERError("non-minimal DER length")
        pos += count
    end = pos + length
    if end > len(data):
        raise DERError("truncated DER value")
    return tag, data[pos:end], end


def read_all(data: bytes) -> list[tuple[int, bytes]]:
    """Split the contents of a constructed value into its (tag, value) children."""
    items = []
    pos = 0
    while pos < len(data):
        tag, value, pos = read_tlv(data, pos)
        items.append((tag, value))
    return items


def read_single(data: bytes, expected_tag: int) -> bytes:
    """The value of data, which must be exactly one TLV with expected_tag."""
    tag, value, end = read_tlv(data)
    if tag != expected_tag or end != len(data):
        raise DERError(f"expected a single DER element with tag 0x{expected_tag:02x}")
    return value


def parse_integer(value: bytes) -> int:
    if not value:
        raise DERError("empty INTEGER")
    if value[0] & 0x80:
        raise DERError("negative INTEGER")
    if len(value) > 1 and value[0] == 0 and not value[1] & 0x80:
        raise DERError("non-minimal INTEGER")
    return int.from_bytes(value, "big")


def parse_oid(value: bytes) -> str:
    if not value or value[-1] & 0x80:
        raise DERError("bad OBJECT IDENTIFIER")
    arcs = []
    acc = 0
    for byte in value:
        acc = (acc << 7) | (byte & 0x7F)
        if not byte & 0x80:
            arcs.append(acc)
            acc = 0
    first = arcs[0]
    head = [min(first // 40, 2), first - 40 * min(first // 40, 2)]
    return ".".join(str(a) for a in head + arcs[1:])


def parse_bit_string(value: bytes) -> bytes:
    if not value or value[0] != 0:
        raise DERError("BIT STRING with unused bits")
    return value[1:]


def encode_signature(r: int, s: int) -> bytes:
    return sequence(integer(r), integer(s))


def parse_signature(data: bytes) -> tuple[int, int]:
    """(r, s) from a DER SEQUENCE { INTEGER r, INTEGER s }, rejecting trailing bytes."""
    items = read_all(read_single(data, SEQUENCE))
    if len(items) != 2 or any(tag != INTEGER for tag, _ in items):
        raise DERError("signature must be SEQUENCE of two INTEGERs")
    return parse_integer(items[0][1]), parse_integer(items[1][1])
