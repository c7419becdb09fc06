"""Extra sections of evl-net(8), beside what the parser generates."""

from __future__ import annotations

SECTIONS = [
    (
        "GETOPT SEMANTICS",
        r"""
Options follow the C tool's getopt rules, which scripts rely on.
An optional argument is taken only when glued to its option:
\fB\-QoRTf\fR, \fB\-Fnetrx.o\fR, \fB\-N41,42\fR, \fB\-\-query\-port=oR\fR.
A separate word (\fB\-Q oRTf\fR) is a stray operand, which is a usage error.
Short options cluster (\fB\-ei eth0\fR); in \fB\-Sg host\fR the \fBg\fR is the argument of \fB\-S\fR.
Options may follow operands, and long options may be abbreviated to any unique prefix.
.PP
When several commands are given together they run in this fixed order:
disable, enable, filter, set VLANs, show VLANs, solicit, query.
The first failure stops the run.
""",
    ),
    (
        "STRICTER THAN THE C TOOL",
        r"""
\fB\-p\fR and \fB\-b\fR take plain non\-negative decimal integers within the kernel limits
(pool size at most 32768, buffer size at most 4 times the page size);
the C tool lets a negative value wrap to a huge number that the kernel then rejects.
A bad value is a usage error when the option is seen, as the C tool's getopt loop checks it:
\fB\-p abc \-h\fR fails, \fB\-h \-p abc\fR prints the help.
\fB\-p\fR and \fB\-b\fR without \fB\-e\fR are accepted, as in C, with a warning that they
have no effect.
.PP
An invalid \fB\-Q\fR modifier is rejected before anything is printed or done.
.PP
VLAN filter errors report the kernel's real errno (the C tool prints "Unknown error \-22").
\fB\-\-set\-vlan\-ids=\fR with an empty list is a usage error (the C tool writes nothing and
says nothing); \fB\-N\fR alone clears the filter.
.PP
\fB\-\-print\-vlan\-ids\fR takes no argument (the C tool wrongly requires one).
.PP
Soliciting \fBbroadcast\fR without \fB\-i\fR is refused up front, since the kernel needs a device for it.
.PP
A stray word on the command line is a usage error as in C, with one line saying what it most
likely means: \fB\-Si eth0 10.10.10.11\fR made \fBi\fR the host
("did you mean \-S 10.10.10.11 \-i eth0?"); a word right after \fB\-Q\fR, \fB\-F\fR or
\fB\-N\fR should have been glued to it; \fB\-S10.10.10.10 eth0.42\fR (the manual's prose)
is told that the interface goes with \fB\-i\fR.
.PP
An interface name no kernel could have (empty, 16 bytes or more, \fB.\fR or \fB..\fR, or
holding \fB/\fR, \fB:\fR or white space) is refused before the kernel is asked, with what is
wrong with it; the C tool passes it on and reports "No such device".
.PP
Files named on the command line or in the environment (the \fB\-F\fR object, the board, the
state, the hosts file) are read only when they are regular files, so a FIFO or a device never
blocks the command, and up to a size limit (64 MiB for an object).
.PP
Messages escape the control characters of what they echo (\fB\\x1b\fR) and shorten echoed
values past 80 characters, so that one message is always one line.
When the output cannot be written (\fB>&\-\fR, \fB>/dev/full\fR) the command fails with
\fIevl\-net: write error: <reason>\fR, saying whether the board was changed all the same;
a closed pipe ends it quietly with status 141, as with a SIGPIPE.
""",
    ),
    (
        "COMPATIBILITY",
        r"""
Options, messages and output are those of the current C \fBevl\-net\fR, which scripts parse.
Abbreviated long options resolve among the C tool's own long options first
(\fB\-\-h\fR is \fB\-\-help\fR, \fB\-\-f\fR \fB\-\-filter\fR, \fB\-\-a\fR
\fB\-\-allow\-gateway\fR, \fB\-\-b\fR \fB\-\-buffer\-size\fR); the long options this
implementation adds match an abbreviation only when no C option does,
which is why the table of every interface is \fB\-Q \-\-all\-interfaces\fR:
\fB\-\-all\fR abbreviates \fB\-\-allow\-gateway\fR, as in C.
\fBPOSIXLY_CORRECT\fR stops option scanning at the first operand, as glibc does.
\fBno command given\fR and \fBa network interface must be specified\fR are printed without
the program name, as C prints them.
A device that cannot be opened is reported as the C tool reports its first step:
\fIcannot open out\-of\-band port eth9: No such device\fR.
\fB\-F\fR without an object prints \fIeBPF module removed from <ifname>\fR;
\fB\-N\fR without a list prints \fIVLAN filter cleared\fR.
\fB\-h\fR prints the C usage unchanged, then a list of the long options added here.
""",
    ),
    (
        "HISTORY",
        r"""
The manual page of \fBevl net\fR dates from an older release of the C tool in two places,
where this tool follows the current C tool instead.
\fB\-Qo\fR prints \fByes\fR or \fBno\fR (the manual's \fB\-QoRTf\fR example shows \fB1\fR,
as the G2 generation printed 0 or 1).
The verbose \fB\-Q\fR report right\-aligns "csum errors:" on the colon like every other
label (the manual indents it by six spaces).
""",
    ),
    (
        "TRANSPORTS",
        r"""
\fBauto\fR (the default) uses \fBioctl\fR when \fI/dev/evl/net\fR exists, otherwise \fBsim\fR
with a one\-line notice on stderr.
\fBsim\fR simulates the EVL network stack of a board described by a TOML file
(\fB\-\-board\fR or \fBEVL_SIM_BOARD\fR; the default board reproduces the manual's setup:
eth0 with eth0.42 at 10.10.10.11/24 and a peer at 10.10.10.10, eth1 and eth1.42,
eth2 whose driver is not oob\-capable, and lo).
Its state persists between invocations.
There, \fB\-F\fR loads the object as libbpf does (maps, global data, sub\-programs), runs the
kernel's verifier first (Linux 6.18, for a socket filter loaded by root: what it refuses,
\fB\-F\fR refuses in its words), and the filter then runs on the frames \fBevl sim rx\fR injects;
its maps keep their content from one run to the next (\fBevl sim maps\fR).
\fBioctl\fR is the EVL kernel ABI (revision 45, the newest net ABI):
\fBEVL_CTLIOC_GET_COREINFO\fR on \fI$EVL_DEVDIR/control\fR (no such node: "no EVL core in this
kernel"; an ABI range without 45: "EVL ABI mismatch", naming both ranges);
\fBEVL_NETIOC_DEVOPEN\fR on \fI$EVL_DEVDIR/net\fR, then \fBEVL_NDEVIOC_SETPORT\fR,
\fBEVL_NDEVIOC_GETSTAT\fR and \fBEVL_NDEVIOC_SETRXEBPF\fR on the device;
solicitation through an out\-of\-band UDP socket (\fBSOCK_OOB\fR of either kernel generation)
and \fBEVL_SOCKIOC_SOLICIT\fR; the VLAN filter through \fI$EVL_SYSDIR/evl/net/vlans\fR.
Errors keep the kernel's errno, with libevl's mappings (no net node: "Operation not supported";
ENOTTY from a device request: "Bad file descriptor").
An interface name the kernel does not know is refused with "No such device" before any EVL request.
\fB\-F\fR needs the system libbpf (\fIlibbpf.so.1\fR, or \fBEVL_NET_LIBBPF\fR); the kernel's
installed/removed lines then go to the kernel log.
\fBremote\fR administers boards over SSH.
Third\-party plugins may add transports and formatters (\fB\-\-format=list\fR).
""",
    ),
    (
        "REMOTE BOARDS",
        r"""
With \fB\-\-remote\fR=[\fIuser\fR@]\fIhost\fR[:\fIport\fR] (or \fBEVL_NET_REMOTE\fR), every
operation runs on that board, through the system \fBssh\fR(1) and the board's
\fBevl\-net\-agent\fR(8); the output, the messages and the exit status are those of local use
on the board.
Several boards (\fB\-\-remote\fR repeated, \fB\-\-hosts\fR \fIfile\fR with one target a line
and \fB#\fR comments, or a comma list in \fBEVL_NET_REMOTE\fR) are served concurrently,
\fB\-\-jobs\fR at a time (by default all of them, as far as the open\-file and process
limits allow), and the results come as a table
(BOARD, STATUS, RESULT, MS; failures last and repeated on stderr),
as one JSON array with \fB\-\-json\fR, or as one JSON object per board, as each finishes,
with \fB\-\-jsonl\fR.
A fleet keeps each board's ssh connection open for 60 s after its last session
(\fBControlMaster=auto\fR, \fBControlPersist=60\fR), in \fI$XDG_RUNTIME_DIR/evl\-ssh\fR
(else \fI~/.cache/evl\-tools/ssh\fR), a directory used only while it is the user's own and
private.  The socket is named by a digest of the configuration \fBssh \-G\fR prints and of the
known\-hosts files' status, so a changed configuration or known\-hosts file logs in afresh.
\fB\-\-ssh\fR='\-o ControlMaster=no' (or any \fBControlMaster\fR, \fBControlPath\fR,
\fBControlPersist\fR, \fB\-M\fR or \fB\-S\fR of the user's) leaves multiplexing to the user.
.PP
Each board ends with one status:
\fBok\fR, \fBchanged\fR (a command changed the board's state), \fBfailed\fR (the board answered
with an error), \fBincompatible\fR (no common protocol, or no agent), \fBbusy\fR (another
session kept the board's lock for the whole wait: nothing was done), or one of the ways a board
does not answer: \fBunreachable\fR, \fBauth\-refused\fR, \fBhostkey\-refused\fR, \fBtimeout\fR and
\fBlost\fR.
A connection lost while a change was in flight is \fBlost\fR with "state unknown, re\-query":
never \fBok\fR.
Changes are idempotent, so running the command again is safe.
.PP
ssh runs with \fBBatchMode=yes\fR and \fBStrictHostKeyChecking=yes\fR: an unknown or changed host
key is refused before anything is sent.
\fB\-\-accept\-new\-host\-key\fR trusts the key of a board seen for the first time
(\fBaccept\-new\fR); a changed key is always refused.
The user's \fI~/.ssh/config\fR applies (user, port, keys, certificates, jump hosts);
\fB\-\-ssh\fR=\fIargs\fR and \fBEVL_NET_SSH\fR add ssh arguments such as \fB\-F\fR \fIfile\fR or
\fB\-o ServerAliveInterval=2\fR, which may change the defaults \fBConnectTimeout=10\fR,
\fBServerAliveInterval=5\fR and \fBServerAliveCountMax=3\fR but not host\-key checking or batch mode
(\fBStrictHostKeyChecking\fR, \fBKnownHostsCommand\fR, \fBNoHostAuthenticationForLocalhost\fR,
\fBVerifyHostKeyDNS\fR, \fBUpdateHostKeys\fR and \fBLogLevel\fR are forced; \fB\-q\fR and
\fI/dev/null\fR as a known\-hosts file are refused, and configuration files are checked through
\fBssh \-G\fR before connecting).
\fB\-\-known\-hosts\fR \fIfile\fR pins the known_hosts file of the run.
\fB\-\-timeout\fR sets the deadline of each request (default 10 seconds).
A connection refused, reset or closed during the key exchange, before the agent answered, is
tried again \fB\-\-retries\fR times (default 3) after a jittered backoff; never after.
.PP
On the board, pin the workstation's key to the agent in \fI~/.ssh/authorized_keys\fR:
.PP
.nf
restrict,command="evl net\-agent \-\-stdio" ssh\-ed25519 AAAA... evl\-net@workstation
.fi
""",
    ),
    (
        "ENVIRONMENT",
        r"""
.TP
\fBEVL_NET_TRANSPORT\fR
The transport to use when \fB\-\-transport\fR is not given.
.TP
\fBEVL_SIM_BOARD\fR
The simulated board: a TOML file, the name of a built\-in board (\fBmanual\fR,
\fBmanual\-traffic\fR), or \fBhost\fR / \fBhost:\fINETNS\fR to stand on the live kernel's
interfaces, addresses, routes and neighbours (of the current or the named network namespace):
solicitations then follow \fBip route get\fR and the kernel's neighbour table, and a device
that goes down loses its port, as on an EVL kernel.
.TP
\fBEVL_SIM_STATE\fR
The simulator's state file (default: \fI$XDG_STATE_HOME/evl\-tools/sim\-state.json\fR).
It keeps the state of every board used with it: switching boards and back finds each as it was;
a board seen for the first time, or whose file changed, boots afresh.
.TP
\fBEVL_SYSDIR\fR
The sysfs root of the EVL devices (default \fI/sys/devices/virtual\fR).
.TP
\fBEVL_DEVDIR\fR
The directory of the EVL device nodes (default \fI/dev/evl\fR).
.TP
\fBEVL_NET_LIBBPF\fR
The libbpf shared object used by \fB\-F\fR on the ioctl transport (default \fIlibbpf.so.1\fR).
.TP
\fBEVL_NET_REMOTE\fR
The board, or a comma list of boards, to administer when no transport and no
\fB\-\-remote\fR or \fB\-\-hosts\fR is given.
.TP
\fBEVL_NET_SSH\fR
Extra ssh arguments (shell words), before those of \fB\-\-ssh\fR.
.TP
\fBEVL_NET_AGENT\fR
The command asked of the board (default \fIevl net\-agent \-\-stdio\fR); a forced command in
the board's authorized_keys takes precedence.
.TP
\fBEVL_DEBUG\fR
Show a traceback with every error.
""",
    ),
    (
        "FILES",
        r"""
.TP
\fI/dev/evl/net\fR
The EVL network device; its presence selects the ioctl transport.
.TP
\fI$EVL_SYSDIR/evl/net/vlans\fR
The global RX VLAN filter.
.TP
\fI$XDG_STATE_HOME/evl\-tools/sim\-state.json\fR
The simulator's state (locked with \fI.lock\fR beside it; when it is a symbolic link, beside
its target, which is the file replaced: the link stays a link).
""",
    ),
    (
        "EXIT STATUS",
        r"""
0 on success, and for \fB\-h\fR, \fB\-@\fR and no argument at all (usage).
1 on any failure: a usage error (the usage follows the message) or a failed command
(one line on stderr: \fIevl\-net: <what failed>: <reason>\fR), on the local or the remote board.
8 when the one remote board did not answer (\fIevl\-net: <board>: <status>: <reason>\fR);
16 when it was busy.
.PP
With several boards: 0 when every board succeeded (\fBok\fR or \fBchanged\fR);
4 when at least one board failed or is incompatible;
8 when at least one board did not answer (unreachable, auth\-refused, hostkey\-refused,
timeout, lost); 16 when at least one board was busy; these add up (12, 20, 24, 28);
1 for an error before any board was contacted.
""",
    ),
    (
        "EXAMPLES",
        r"""
.nf
evl net \-ei eth1.42 \-p 4096
evl net \-di eth1.42
evl net \-ei eth0.42
evl net \-S 10.10.10.10
evl net \-Q \-i eth0.42
evl net \-QoRTf \-i eth0.42
evl net \-N41,42,55\-57
evl net \-n
evl net \-Fnetrx.o \-i eth0.42
evl net \-Q \-\-all\-interfaces
evl net \-\-json \-Q \-i eth0.42
evl net \-\-remote=evl@board1 \-Q \-i eth0.42
evl net \-\-hosts lab.txt \-ei eth0.42 \-\-json
.fi
""",
    ),
]


def sections() -> list[tuple[str, str]]:
    return SECTIONS


SIM_SECTIONS = [
    (
        "TRAFFIC MODEL",
        r"""
\fBrx\fR injects frames on an interface; they reach the EVL input path only when their real
device carries an out\-of\-band port.
The installed eBPF program decides first (0 drop, 1 accept IPv4, 2 leave in\-band,
3 or no program: the VLAN rules, any other value: in\-band);
the VLAN rules send IPv4 frames whose VLAN id is in the global filter out\-of\-band.
Out\-of\-band frames count in rx packets and rx bytes of the port of their VLAN device
(else of the real device); a bad UDP checksum counts in csum errors.
\fB\-\-nomem\fR counts in tx nomem of the real device, as the kernel's driver hook does.
.PP
\fBtx\fR takes one buffer of the pool per frame and gives it back when the NIC is done;
with \fB\-\-stall\fR it is not, the pool drains and further sends count in tx nomem.
\fBdrain\fR completes the buffers in flight.
.PP
\fBlink \fIdev\fB down\fR dismantles the ports of the device and of the VLAN devices on it,
and flushes their ARP entries, as the kernel does; \fBup\fR does not re\-enable them.
""",
    ),
    (
        "ENVIRONMENT",
        r"""
.TP
\fBEVL_SIM_BOARD\fR, \fBEVL_SIM_STATE\fR
The board and the state file, as for \fBevl\-net\fR(8).
""",
    ),
    (
        "LIMITS",
        r"""
\fB\-\-count\fR is 1 to 10000000 frames; a long \fBrx\fR run shows its progress on a terminal
and stops at Ctrl\-C, keeping the frames injected so far (exit 130).
Frame sizes are 14 to 65535 bytes, ports 0 to 65535, addresses dotted IPv4.
Counters wrap at 2^64, as the kernel's 64\-bit counters do.
Files are read only when they are regular files (a FIFO, a device or a directory is refused
at once, before it is opened), of at most 256 MiB (a board file: 16 MiB); a JSON\-lines
frame file holds at most 10000000 frames.
""",
    ),
    (
        "FILES",
        r"""
The state file holds the state of every board used with it; a shipped board is known by
its name and a board file by its path, and either by its content: editing a board file
boots it afresh, reinstalling the package or touching the file does not.
A state file that is a symbolic link stays one: its target is replaced, atomically, and
locked through \fI<target>.lock\fR, which must be a regular file (never a link).
Temporary files \fI<target>.tmp.<pid>\fR left by a killed writer are removed by the next one.
""",
    ),
    (
        "EXIT STATUS",
        "0 on success, 1 on failure (one line: \\fIevl\\-sim: <what failed>: <reason>\\fR), "
        "2 on a usage error (the message, then the usage of the subcommand), "
        "130 when a run was interrupted.",
    ),
]


def sim_sections() -> list[tuple[str, str]]:
    return SIM_SECTIONS
