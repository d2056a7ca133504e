#!/usr/bin/env python3
"""A DNS responder on loopback for the e2e benchmark's W1C (mail from outside, with the SPF,
DKIM and DMARC checks on): answers TXT queries from a table given on the command line,
everything else NXDOMAIN, over UDP. Usage: fakedns.py PORTFILE NAME=TEXT...
It binds 127.0.0.1 on a free port and writes the port to PORTFILE."""
import socket
import struct
import sys

records = {}
for arg in sys.argv[2:]:
    name, text = arg.split("=", 1)
    records[name.lower().rstrip(".")] = text.encode()

sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.bind(("127.0.0.1", 0))
with open(sys.argv[1], "w") as f:
    f.write(str(sock.getsockname()[1]))


def question(packet):
    labels, i = [], 12
    while i < len(packet) and packet[i]:
        n = packet[i]
        labels.append(packet[i + 1 : i + 1 + n].decode("ascii", "replace"))
        i += 1 + n
    qtype = struct.unpack("!H", packet[i + 1 : i + 3])[0] if i + 3 <= len(packet) else 0
    return ".".join(labels).lower(), qtype, i + 5


while True:
    packet, peer = sock.recvfrom(1500)
    if len(packet) < 12:
        continue
    name, qtype, end = question(packet)
    text = records.get(name) if qtype == 16 else None
    flags = 0x8180 if text is not None else 0x8183  # response, RD, RA; NOERROR / NXDOMAIN
    header = packet[:2] + struct.pack("!HHHHH", flags, 1, 1 if text is not None else 0, 0, 0)
    reply = header + packet[12:end]
    if text is not None:
        rdata = bytes([len(text)]) + text
        reply += b"\xc0\x0c" + struct.pack("!HHIH", 16, 1, 300, len(rdata)) + rdata
    sock.sendto(reply, peer)
