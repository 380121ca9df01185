"""Many datagrams per system call: recvmmsg(2) and sendmmsg(2) on a UDP socket, through libc (Linux).

Under load the kernel's send and receive calls are most of the DNS filter's time (a profile of the
answering thread: 60% in sendto, 20% in recvfrom); taking up to 64 questions in one call and sending
their answers in one more halves the calls' cost. Buffers are allocated once; the caller reads the
questions as bytes and queues answers, which `send` hands to the kernel together.

`BatchSocket.available()` is False where libc lacks the calls; the server then reads one datagram at a
time.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import socket
import struct

_LIBC: ctypes.CDLL | None
try:
    _LIBC = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    _RECVMMSG, _SENDMMSG = _LIBC.recvmmsg, _LIBC.sendmmsg
except (OSError, AttributeError):
    _LIBC = None

_V4 = struct.Struct("I")
MSG_DONTWAIT = 0x40
MSG_TRUNC = 0x20


class _Iovec(ctypes.Structure):
    _fields_ = (("iov_base", ctypes.c_void_p), ("iov_len", ctypes.c_size_t))


class _Msghdr(ctypes.Structure):
    _fields_ = (
        ("msg_name", ctypes.c_void_p),
        ("msg_namelen", ctypes.c_uint32),
        ("msg_iov", ctypes.POINTER(_Iovec)),
        ("msg_iovlen", ctypes.c_size_t),
        ("msg_control", ctypes.c_void_p),
        ("msg_controllen", ctypes.c_size_t),
        ("msg_flags", ctypes.c_int),
    )


class _Mmsghdr(ctypes.Structure):
    _fields_ = (("msg_hdr", _Msghdr), ("msg_len", ctypes.c_uint))


_STRIDE = ctypes.sizeof(_Mmsghdr)
_LEN_AT = _Mmsghdr.msg_len.offset
_FLAGS_AT = _Msghdr.msg_flags.offset
_NAME_SIZE = 32  # a sockaddr_in6 is 28 bytes


class BatchSocket:
    """Receive up to `count` datagrams of up to `size` bytes per call on `sock` (non-blocking, one
    address family), and send queued answers back to their senders per call."""

    def __init__(self, sock: socket.socket, count: int = 64, size: int = 4097) -> None:
        if _LIBC is None:
            raise OSError("recvmmsg is not available here")
        self.fd = sock.fileno()
        self.family = sock.family
        self.count, self.size = count, size
        self._in = ctypes.create_string_buffer(count * size)
        self._out = ctypes.create_string_buffer(count * size)
        self._names = ctypes.create_string_buffer(count * _NAME_SIZE)
        self._in_iov = (_Iovec * count)()
        self._out_iov = (_Iovec * count)()
        self._in_msgs = (_Mmsghdr * count)()
        self._out_msgs = (_Mmsghdr * count)()
        names = ctypes.addressof(self._names)
        namelen = 16 if self.family == socket.AF_INET else 28
        for i in range(count):
            self._in_iov[i].iov_base = ctypes.addressof(self._in) + i * size
            self._in_iov[i].iov_len = size
            self._out_iov[i].iov_base = ctypes.addressof(self._out) + i * size
            header = self._in_msgs[i].msg_hdr
            header.msg_name, header.msg_namelen = names + i * _NAME_SIZE, namelen
            header.msg_iov, header.msg_iovlen = ctypes.pointer(self._in_iov[i]), 1
            out = self._out_msgs[i].msg_hdr
            out.msg_namelen = namelen
            out.msg_iov, out.msg_iovlen = ctypes.pointer(self._out_iov[i]), 1
        self.received = memoryview(self._in).cast("B")
        self.names = memoryview(self._names).cast("B")
        self._in_view = memoryview(self._in_msgs).cast("B")
        self._out_bytes = memoryview(self._out).cast("B")
        self._out_iov_len = memoryview(self._out_iov).cast("B").cast("Q")  # [2j + 1] = iov_len of answer j
        self._out_name = memoryview(self._out_msgs).cast("B").cast("Q")  # [j * stride/8] = msg_name
        self._names_at = names
        self._queued = 0
        self.oversized = 0  # datagrams longer than `size`, dropped
        self._in_ptr = ctypes.byref(self._in_msgs)
        self._out_ptr = ctypes.byref(self._out_msgs)

    @staticmethod
    def available() -> bool:
        """libc has the calls, on a 64-bit system (the structure offsets used here are LP64's)."""
        return _LIBC is not None and ctypes.sizeof(ctypes.c_void_p) == 8

    def receive(self) -> list[tuple[int, int]]:
        """Take what is waiting (up to `count`): (slot, length) of each datagram, without those cut
        short by the buffer (oversized: dropped). Empty when nothing waits."""
        got = _RECVMMSG(self.fd, self._in_ptr, self.count, MSG_DONTWAIT, None)
        if got <= 0:
            if got < 0 and ctypes.get_errno() not in (errno.EAGAIN, errno.EINTR):
                raise OSError(ctypes.get_errno(), "recvmmsg failed")
            return []
        view, out = self._in_view, []
        for i in range(got):
            base = i * _STRIDE
            (length,) = struct.unpack_from("I", view, base + _LEN_AT)
            (flags,) = struct.unpack_from("i", view, base + _FLAGS_AT)
            if flags & MSG_TRUNC:
                self.oversized += 1
            else:
                out.append((i, length))
        return out

    def peer(self, slot: int) -> tuple[str, int]:
        """The sender of datagram `slot` as (address, port)."""
        at = slot * _NAME_SIZE
        port = int.from_bytes(self.names[at + 2 : at + 4], "big")
        if self.family == socket.AF_INET:
            return socket.inet_ntop(socket.AF_INET, self.names[at + 4 : at + 8]), port
        return socket.inet_ntop(socket.AF_INET6, self.names[at + 8 : at + 24]), port

    def peer_key(self, slot: int) -> bytes:
        """The sender's address as raw bytes (cheap; a key for a dictionary of clients)."""
        at = slot * _NAME_SIZE
        return bytes(
            self.names[at + 4 : at + 8] if self.family == socket.AF_INET else self.names[at + 8 : at + 24]
        )

    def queue(self, slot: int, answer: bytes) -> None:
        """Queue `answer` to the sender of datagram `slot` (sent by `send`). Answers longer than
        `size` are not queued."""
        j = self._queued
        if len(answer) > self.size or j >= self.count:
            return
        start = j * self.size
        self._out_bytes[start : start + len(answer)] = answer
        self._out_iov_len[2 * j + 1] = len(answer)
        self._out_name[j * (_STRIDE // 8)] = self._names_at + slot * _NAME_SIZE
        self._queued = j + 1

    def send(self) -> int:
        """Send the queued answers, in as few calls as the kernel allows; how many went. sendmmsg stops
        at the first answer it cannot send (a sender at port 0, say): that one is skipped and the rest
        still go. A full send buffer drops what is left (UDP)."""
        queued, self._queued = self._queued, 0
        done = went = 0
        while done < queued:
            start = ctypes.byref(self._out_msgs, done * _STRIDE)
            sent: int = _SENDMMSG(self.fd, start, queued - done, MSG_DONTWAIT)
            if sent < 0 and ctypes.get_errno() in (errno.EAGAIN, errno.ENOBUFS):
                break
            if sent <= 0:
                done += 1  # this answer cannot be sent: skip it, send the others (never loop in place)
                continue
            went += sent
            done += sent
        return went
