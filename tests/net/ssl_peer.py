"""TLS peers for tests/net/ssl_test.cpp: Python's ssl module under asyncio,
an implementation independent of qiloop. Loopback only.

  ssl_peer.py server CERT KEY [ALPN,...|,] [MODE]   prints its port, then serves
      MODE echo (default): echoes until EOF, then closes
      MODE abort: sends b"bye", then drops the connection without close_notify
  ssl_peer.py client PORT CAFILE HOSTNAME MESSAGE  sends MESSAGE, prints what
      comes back until EOF
  ssl_peer.py starttls-client PORT CAFILE HOSTNAME MESSAGE  as client, after
      a plain b"STARTTLS\\n" answered by b"OK\\n"
  ssl_peer.py halfclose PORT CAFILE HOSTNAME SIZE  blocking client: sends
      b"line\\n" and SIZE bytes, shuts the socket's sending side down (a TCP
      EOF without close_notify), prints "sent", reads until the server closes
"""
import asyncio
import socket
import ssl
import sys


async def serve(cert, key, alpn, mode):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    if alpn.strip(","):
        ctx.set_alpn_protocols(alpn.split(","))

    async def handle(reader, writer):
        try:
            if mode == "abort":
                writer.write(b"bye")
                await writer.drain()
                await asyncio.sleep(0.2)
                writer.transport.abort()
                return
            while data := await reader.read(1 << 16):
                writer.write(data)
                await writer.drain()
            writer.close()
            await writer.wait_closed()
        except (ConnectionError, ssl.SSLError):
            writer.transport.abort()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=ctx)
    print(server.sockets[0].getsockname()[1], flush=True)
    await server.serve_forever()


async def connect(port, cafile, hostname, message, starttls):
    ctx = ssl.create_default_context(cafile=cafile)
    if starttls:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"STARTTLS\n")
        if await reader.readline() != b"OK\n":
            sys.exit(2)
        await writer.start_tls(ctx, server_hostname=hostname)
    else:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ctx, server_hostname=hostname)
    writer.write(message.encode())
    await writer.drain()
    got = await reader.read()
    print(got.decode(), end="", flush=True)
    writer.close()
    try:
        await writer.wait_closed()
    except (ConnectionError, ssl.SSLError):
        pass


def halfclose(port, cafile, hostname, size):
    ctx = ssl.create_default_context(cafile=cafile)
    s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port)), server_hostname=hostname)
    s.settimeout(20)
    s.sendall(b"line\n" + b"x" * size)
    # socket.socket's shutdown, not SSLSocket's: no close_notify, the SSL object stays.
    socket.socket.shutdown(s, socket.SHUT_WR)
    print("sent", flush=True)
    try:
        while s.recv(1 << 16):
            pass
    except (OSError, ssl.SSLError):
        pass


def main():
    what = sys.argv[1]
    if what == "halfclose":
        halfclose(int(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5]))
        return
    if what == "server":
        alpn = sys.argv[4] if len(sys.argv) > 4 else ""
        mode = sys.argv[5] if len(sys.argv) > 5 else "echo"
        asyncio.run(serve(sys.argv[2], sys.argv[3], alpn, mode))
    else:
        asyncio.run(connect(int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5], what == "starttls-client"))


if __name__ == "__main__":
    main()
