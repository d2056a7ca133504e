//! An in-memory [`Executor`]: files with modes, scripted program results, and a log of
//! every delivery it was asked to make.

use std::collections::BTreeMap;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use mta_dotqmail::{
    Executor, FileDeliveryError, FileKind, FileLookup, FileStatus, Message, ProgramEnv, ProgramRun,
    ProgramStatus,
};

/// A node in the fake filesystem.
#[derive(Clone, Debug)]
pub(crate) enum Node {
    File {
        mode: u32,
        content: Vec<u8>,
    },
    Dir {
        mode: u32,
    },
    Fifo,
    /// Opening it fails with this errno.
    Error(i32),
}

/// One side effect the interpreter asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Call {
    Maildir {
        path: PathBuf,
        prefix: Vec<u8>,
        message: Vec<u8>,
    },
    Mbox {
        path: PathBuf,
        from: Vec<u8>,
        prefix: Vec<u8>,
        message: Vec<u8>,
    },
    Program {
        command: Vec<u8>,
        env: ProgramEnv,
        home: PathBuf,
        stdin: Vec<u8>,
    },
}

#[derive(Default)]
pub(crate) struct Mock {
    pub(crate) nodes: BTreeMap<PathBuf, Node>,
    pub(crate) calls: Vec<Call>,
    /// Maildir paths whose delivery fails with a write error.
    pub(crate) failing: Vec<PathBuf>,
    /// Paths whose maildir or mbox delivery fails with the error this makes.
    pub(crate) file_errors: Vec<(PathBuf, fn() -> FileDeliveryError)>,
}

impl Mock {
    /// A mock with `/home/joe` (0755) and `/var/qmail/alias` (0755).
    pub(crate) fn new() -> Self {
        let mut m = Mock::default();
        m.dir("/home/joe", 0o755);
        m.dir("/var/qmail/alias", 0o755);
        m
    }

    pub(crate) fn dir(&mut self, path: &str, mode: u32) -> &mut Self {
        self.nodes.insert(path.into(), Node::Dir { mode });
        self
    }

    pub(crate) fn file(&mut self, path: &str, mode: u32, content: &[u8]) -> &mut Self {
        self.nodes.insert(
            path.into(),
            Node::File {
                mode,
                content: content.to_vec(),
            },
        );
        self
    }

    pub(crate) fn node(&mut self, path: &str, node: Node) -> &mut Self {
        self.nodes.insert(path.into(), node);
        self
    }

    /// Short description of each call, in order: `maildir /p`, `mbox /p`, `program cmd`.
    pub(crate) fn trace(&self) -> Vec<String> {
        self.calls
            .iter()
            .map(|c| match c {
                Call::Maildir { path, .. } => format!("maildir {}", path.display()),
                Call::Mbox { path, .. } => format!("mbox {}", path.display()),
                Call::Program { command, .. } => {
                    format!("program {}", String::from_utf8_lossy(command))
                }
            })
            .collect()
    }
}

fn slurp(message: Message<'_>) -> Vec<u8> {
    let mut v = Vec::new();
    message.reader().unwrap().read_to_end(&mut v).unwrap();
    v
}

impl FileLookup for Mock {
    fn probe(&mut self, path: &Path) -> io::Result<Option<FileStatus>> {
        Ok(match self.nodes.get(path) {
            None => None,
            Some(Node::File { mode, .. }) => Some(FileStatus::regular(*mode)),
            Some(Node::Dir { mode }) => Some(FileStatus::directory(*mode)),
            Some(Node::Fifo) => Some(FileStatus {
                kind: FileKind::Other,
                mode: 0o644,
            }),
            Some(Node::Error(errno)) => return Err(io::Error::from_raw_os_error(*errno)),
        })
    }

    fn exists(&mut self, path: &Path) -> io::Result<bool> {
        match self.nodes.get(path) {
            Some(Node::Error(errno)) => Err(io::Error::from_raw_os_error(*errno)),
            other => Ok(other.is_some()),
        }
    }

    fn read(&mut self, path: &Path) -> io::Result<Vec<u8>> {
        match self.nodes.get(path) {
            Some(Node::File { content, .. }) => Ok(content.clone()),
            _ => Err(io::Error::from_raw_os_error(2)),
        }
    }
}

impl Executor for Mock {
    fn maildir(
        &mut self,
        dir: &Path,
        prefix: &[u8],
        message: Message<'_>,
    ) -> Result<(), FileDeliveryError> {
        if self.failing.iter().any(|p| p == dir) {
            return Err(FileDeliveryError::Write(io::Error::from_raw_os_error(28)));
        }
        if let Some((_, make)) = self.file_errors.iter().find(|(p, _)| p == dir) {
            return Err(make());
        }
        self.calls.push(Call::Maildir {
            path: dir.to_path_buf(),
            prefix: prefix.to_vec(),
            message: slurp(message),
        });
        Ok(())
    }

    fn mbox(
        &mut self,
        path: &Path,
        from_line: &[u8],
        prefix: &[u8],
        message: Message<'_>,
    ) -> Result<(), FileDeliveryError> {
        if let Some((_, make)) = self.file_errors.iter().find(|(p, _)| p == path) {
            return Err(make());
        }
        self.calls.push(Call::Mbox {
            path: path.to_path_buf(),
            from: from_line.to_vec(),
            prefix: prefix.to_vec(),
            message: slurp(message),
        });
        Ok(())
    }

    /// A tiny scripted shell: `exit N`, `kill`, `echo TEXT`, `spew N` (N bytes of `x`);
    /// anything else exits 0 silently.
    fn program(
        &mut self,
        command: &[u8],
        env: &ProgramEnv,
        home: &Path,
        message: Message<'_>,
    ) -> io::Result<ProgramRun> {
        self.calls.push(Call::Program {
            command: command.to_vec(),
            env: env.clone(),
            home: home.to_path_buf(),
            stdin: slurp(message),
        });
        let cmd = String::from_utf8_lossy(command);
        let (status, output) = if let Some(n) = cmd.strip_prefix("exit ") {
            (ProgramStatus::Exited(n.trim().parse().unwrap()), Vec::new())
        } else if cmd == "kill" {
            (ProgramStatus::Signaled(9), Vec::new())
        } else if let Some(text) = cmd.strip_prefix("echo ") {
            (ProgramStatus::Exited(0), format!("{text}\n").into_bytes())
        } else if let Some(n) = cmd.strip_prefix("spew ") {
            (ProgramStatus::Exited(0), vec![b'x'; n.parse().unwrap()])
        } else {
            (ProgramStatus::Exited(0), Vec::new())
        };
        Ok(ProgramRun { status, output })
    }
}
