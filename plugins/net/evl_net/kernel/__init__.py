"""The kernel side of the EVL network stack as user space sees it: ABI structs, libbpf, ELF objects, list syntax."""
