//! A busybox root filesystem, built once per test process (there are no
//! images on these machines).

use std::path::PathBuf;
use std::sync::OnceLock;

const APPLETS: &[&str] = &[
    "sh", "ip", "httpd", "wget", "nc", "sleep", "cat", "ls", "ping", "echo", "ifconfig", "route",
    "hostname", "true",
];

pub fn path() -> PathBuf {
    static ROOTFS: OnceLock<PathBuf> = OnceLock::new();
    ROOTFS
        .get_or_init(|| {
            // Beside the build output, shared by the test binaries: built in
            // a private directory, then renamed into place.
            let target = crate::ocinet_bin()
                .parent()
                .map(|p| p.to_path_buf())
                .expect("target dir");
            let done = target.join("it-rootfs-v2");
            if done.join("bin/busybox").exists() {
                return done;
            }
            let root = target.join(format!(".it-rootfs-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&root);
            for d in ["bin", "proc", "sys", "dev", "tmp", "etc", "www", "out"] {
                std::fs::create_dir_all(root.join(d)).expect("rootfs dir");
            }
            let busybox = ["/bin/busybox", "/usr/bin/busybox"]
                .into_iter()
                .find(|p| std::path::Path::new(p).exists())
                .expect("busybox-static is not installed");
            std::fs::copy(busybox, root.join("bin/busybox")).expect("copy busybox");
            for a in APPLETS {
                std::os::unix::fs::symlink("busybox", root.join("bin").join(a))
                    .expect("applet link");
            }
            std::fs::write(root.join("etc/passwd"), "root:x:0:0:root:/:/bin/sh\n").expect("passwd");
            std::fs::write(root.join("etc/group"), "root:x:0:\n").expect("group");
            if std::fs::rename(&root, &done).is_err() {
                // Another test binary won the race.
                let _ = std::fs::remove_dir_all(&root);
            }
            done
        })
        .clone()
}
