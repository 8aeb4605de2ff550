"""Switch tests: the B2BUA end to end over loopback UDP, and its parts."""
