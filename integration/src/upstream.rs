//! Fake upstream resolvers for the DNS tests, run in a host's outside
//! namespace (a test's queries never reach the machine's resolvers), and
//! DNS clients run inside a container's network namespace.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;

use crate::{text, Host, Proc};

/// A UDP resolver on `at:53` of the outside namespace (`at` an IPv4
/// address, or the outside's IPv6 one, `OUTSIDE_IP6`): every query is
/// logged (its name, a line each) and answered with one A record,
/// `answer`, except names whose first label starts with `slow`, which are
/// never answered (as an upstream that cannot resolve them in time).
pub struct Upstream {
    _proc: Proc,
    log: PathBuf,
}

const UPSTREAM_PY: &str = r#"import socket, sys
s = socket.socket(socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], 53))
answer = bytes(int(x) for x in sys.argv[2].split("."))
log = open(sys.argv[3], "a", buffering=1)
while True:
    q, peer = s.recvfrom(4096)
    labels, i = [], 12
    try:
        while q[i]:
            labels.append(q[i + 1:i + 1 + q[i]].decode(errors="replace"))
            i += 1 + q[i]
    except IndexError:
        continue
    end = i + 5
    log.write(".".join(labels) + "\n")
    if labels and labels[0].startswith("slow"):
        continue
    r = q[:2] + b"\x81\x80" + q[4:6] + b"\x00\x01\x00\x00\x00\x00" + q[12:end]
    r += b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x00\x3c\x00\x04" + answer
    s.sendto(r, peer)
"#;

impl Upstream {
    /// Started on `at` (an address of the outside namespace), answering
    /// `answer`.
    pub fn start(h: &Host, at: &str, answer: [u8; 4]) -> Upstream {
        let log = h.dir.join(format!("upstream-{}.log", at.replace(':', "_")));
        let answer = answer.map(|o| o.to_string()).join(".");
        let p = h.spawn_outside(&[
            "python3",
            "-c",
            UPSTREAM_PY,
            at,
            &answer,
            log.to_str().expect("utf-8 test dir"),
        ]);
        std::thread::sleep(std::time::Duration::from_millis(300));
        Upstream { _proc: p, log }
    }

    /// The names it was asked for, in order.
    pub fn asked(&self) -> Vec<String> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }
}

/// A DNS client for scripts run in a container's namespace: `q(id, name,
/// type)` builds a query, `ask(name, type)` sends one to `gw` and returns
/// (rcode, answer count), or (-1, 0) after a 2 s timeout; `gw` of either
/// family.
pub const CLIENT_PY: &str = r#"import socket, struct, sys, time
def q(i, name, t=1):
    h = struct.pack(">HHHHHH", i, 0x0100, 1, 0, 0, 0)
    return h + b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0" + struct.pack(">HH", t, 1)
def ask(gw, name, t=1, i=4242):
    s = socket.socket(socket.AF_INET6 if ":" in gw else socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(2)
    s.sendto(q(i, name, t), (gw, 53))
    try:
        while True:
            r, _ = s.recvfrom(4096)
            if r[:2] == struct.pack(">H", i):
                return (r[3] & 15, struct.unpack(">H", r[6:8])[0])
    except socket.timeout:
        return (-1, 0)
    finally:
        s.close()
"#;

/// Run python `script` (after `CLIENT_PY`) in the network namespace of
/// container `id` of `h`; its output.
pub fn in_container_py(h: &Host, id: &str, script: &str) -> String {
    let ns = h.netns_of(id);
    text(
        &Command::new("nsenter")
            .arg(format!("--net={ns}"))
            .args(["python3", "-c", &format!("{CLIENT_PY}\n{script}")])
            .output()
            .expect("python3"),
    )
}

/// A DNS client over UDP or TCP, either family, for `ask` (after
/// `CLIENT_PY`): `look(gw, name, type, tcp)` is "RCODE:" and the answers'
/// data (A, AAAA, PTR), comma-separated ("timeout" when none came within
/// 2 s).
pub const LOOK_PY: &str = r#"
def name_at(r, i):
    out = []
    while r[i]:
        if r[i] & 0xc0 == 0xc0:
            out.append(name_at(r, ((r[i] & 0x3f) << 8) | r[i + 1])[0])
            return ".".join(out), i + 2
        out.append(r[i + 1:i + 1 + r[i]].decode())
        i += 1 + r[i]
    return ".".join(out), i + 1
def recvall(s, n):
    b = b""
    while len(b) < n:
        c = s.recv(n - len(b))
        if not c:
            raise OSError("closed")
        b += c
    return b
def look(gw, name, t, tcp=False, i=4343):
    fam = socket.AF_INET6 if ":" in gw else socket.AF_INET
    m = q(i, name, t)
    s = socket.socket(fam, socket.SOCK_STREAM if tcp else socket.SOCK_DGRAM)
    s.settimeout(2)
    try:
        if tcp:
            s.connect((gw, 53))
            s.sendall(struct.pack(">H", len(m)) + m)
            r = recvall(s, struct.unpack(">H", recvall(s, 2))[0])
        else:
            s.sendto(m, (gw, 53))
            while True:
                r, _ = s.recvfrom(4096)
                if r[:2] == struct.pack(">H", i):
                    break
    except (socket.timeout, OSError):
        return "timeout"
    finally:
        s.close()
    an = struct.unpack(">H", r[6:8])[0]
    _, j = name_at(r, 12)
    j += 4
    vals = []
    for _ in range(an):
        _, j = name_at(r, j)
        rt, _, _, ln = struct.unpack(">HHIH", r[j:j + 10])
        d = r[j + 10:j + 10 + ln]
        if rt == 1:
            vals.append(socket.inet_ntop(socket.AF_INET, d))
        elif rt == 28:
            vals.append(socket.inet_ntop(socket.AF_INET6, d))
        elif rt == 12:
            vals.append(name_at(r, j + 10)[0])
        j += 10 + ln
    return "%d:%s" % (r[3] & 15, ",".join(vals))
"#;

/// The ip6.arpa name of `ip` (32 nibbles, lowest first), for `ask`.
pub fn arpa6(ip: &str) -> String {
    let ip: std::net::Ipv6Addr = ip.parse().expect("an IPv6 address");
    let hex: String = ip.octets().iter().map(|b| format!("{b:02x}")).collect();
    let mut s: String = hex.chars().rev().flat_map(|c| [c, '.']).collect();
    s += "ip6.arpa";
    s
}

/// Record types, for `ask`.
pub const A: u16 = 1;
pub const PTR: u16 = 12;
pub const AAAA: u16 = 28;

/// Ask each of `asks` (key, server, name, type, over TCP) from inside
/// container `id`, in one run; the results by key.
pub fn ask(h: &Host, id: &str, asks: &[(&str, &str, &str, u16, bool)]) -> HashMap<String, String> {
    let mut script = String::from(LOOK_PY);
    for (key, gw, name, t, tcp) in asks {
        let tcp = if *tcp { "True" } else { "False" };
        script += &format!("print({key:?} + '=' + look({gw:?}, {name:?}, {t}, {tcp}))\n");
    }
    let out = in_container_py(h, id, &script);
    let got: HashMap<String, String> = out
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    assert_eq!(got.len(), asks.len(), "{out}");
    got
}
