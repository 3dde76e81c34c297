{
  "targets": [
    {
      "target_name": "hitch_native",
      "sources": ["hitch_native.c", "unix_socket.c"],
      "cflags": ["-Wall", "-Wextra", "-Wno-unused-parameter"]
    }
  ]
}
