//! Durable file writes: a temporary file, synced, renamed over the final name, then the directory
//! synced. A crash leaves the old state or the new file, never a partial one.

use std::path::Path;

/// Writes `bytes` to `path` (in `dir`) atomically and durably.
pub async fn write_atomically(dir: &Path, path: &Path, bytes: Vec<u8>) -> std::io::Result<()> {
    let dir = dir.to_path_buf();
    let target = path.to_path_buf();
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp"));
    tokio::task::spawn_blocking(move || -> std::io::Result<()> {
        use std::io::Write;
        std::fs::create_dir_all(&dir)?;
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, &target)?;
        std::fs::File::open(&dir)?.sync_all()
    })
    .await
    .map_err(|e| std::io::Error::other(e.to_string()))
    .and_then(|r| r)
}
