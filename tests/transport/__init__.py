"""Transport tests over real loopback sockets."""
