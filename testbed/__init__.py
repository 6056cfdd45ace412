"""The emulated carrier network: namespaces, TUN devices and a user-space link emulator."""
