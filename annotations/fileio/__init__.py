"""File I/O every area shares: atomic writes, and reads whose errors are one line naming the file.

Writes. Every output of the engine (label maps, confidence maps, JSON records, checkpoints) goes through
these helpers. The data is written to a temporary file in the destination folder, flushed and
fsync'ed, then renamed over the destination with ``os.replace``, which is atomic on POSIX and
Windows when both paths are on one file system (where the file system has no ``fsync``, a
FUSE mount, the write goes on without it: :func:`sync`). The temporary file is created as
``open()`` creates one (:func:`~annotations.fileio.atomic._new_temporary`): an output has the
permissions of any new file in its folder (0666 less the umask, or the folder's default ACL's).
A process killed at any moment leaves either the
old file or the new one, plus at worst a stray ``.NAME.*.tmp`` file (:func:`is_temporary`) that
later runs ignore, and the next run of its command removes (:func:`engine.runlock.exclusive`). A file that
holds the bytes already is not written again (its times stay). A write the
disk refuses (full, read-only, no permission) raises its ``OSError`` naming the destination:
neither Python's bare "[Errno 28] No space left on device" of a failed ``write`` nor the hidden
temporary file.

Reads. :func:`read_text`, :func:`read_json` and :func:`read_yaml` read UTF-8 with or without a
byte-order mark and UTF-16 with one (:func:`~annotations.fileio.reads._decode`), and turn a missing
file, a folder, other bytes and a parse error into ``FileNotFoundError`` / ``ValueError`` whose
message starts with the path, so a command can print it as its one-line error; :func:`first_line`
is that line for any exception.

The modules, lowest first (each imports only those above it in this list):

* :mod:`~annotations.fileio.errors`: one-line messages of failures, the disk's errors;
* :mod:`~annotations.fileio.names`: output names and paths checked before a write;
* :mod:`~annotations.fileio.atomic`: atomic writes and their temporary files, ``fsync``,
  ``chmod`` and ``flock`` as file systems take them;
* :mod:`~annotations.fileio.temporaries`: dead temporaries and staging folders, and their removal;
* :mod:`~annotations.fileio.swaps`: several entries of a folder replaced together;
* :mod:`~annotations.fileio.appends`: append-only logs (``manifest.jsonl``) and folder locks;
* :mod:`~annotations.fileio.reads`: reads of bytes, text, JSON, JSON lines and YAML;
* :mod:`~annotations.fileio.folders`: what a folder is (a dataset, an engine output, a demo);
* :mod:`~annotations.fileio.recorded`: paths and sizes that run records hold, found from here.

Every name is importable from ``annotations.fileio`` as before; a test that patches a name
patches it in the module that holds it.
"""

from __future__ import annotations

from annotations.fileio.appends import (
    COMPACT_FACTOR,
    FOLDER_LOCK_WAIT_S,
    append_line,
    append_lines,
    compact_manifest,
    folder_locked,
    own_file,
)
from annotations.fileio.atomic import (
    NAME_MAX,
    NO_CHMOD,
    NO_FSYNC,
    TMP_SUFFIX,
    atomic_copy,
    atomic_file,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    cut_to_bytes,
    fcntl_module,
    json_text,
    new_file_mode,
    same_file,
    set_mode,
    sync,
    try_lock,
)
from annotations.fileio.errors import (
    DISK_ERRNOS,
    UNREADABLE,
    did_you_mean,
    first_line,
    is_disk_error,
    naming,
    torch_magic,
    type_and_first_line,
    unreadable_torch_file,
)
from annotations.fileio.folders import (
    DEMO_RECORDS,
    DEMO_SUMMARY_ASIDE,
    FUSE_RECORD,
    OUTPUT_RECORDS,
    SPEC_NAMES,
    folder_is,
    in_the_output,
    is_dataset_root,
    is_demo_folder,
    not_this_output,
    output_kind,
    outputs_around,
    outputs_inside,
    spec_file,
    split_key,
)
from annotations.fileio.names import (
    WINDOWS_CHARS,
    WINDOWS_DEVICES,
    check_expanded,
    check_not_a_file,
    check_report_file,
    check_windows_name,
    unexpanded,
    windows_refuses,
)
from annotations.fileio.reads import (
    YAML11_BOOLS,
    YAML_MAX_VALUES,
    parse_json,
    parse_yaml,
    read_bytes,
    read_json,
    read_jsonl,
    read_text,
    read_yaml,
    yaml_scalar,
)
from annotations.fileio.recorded import (
    file_bytes,
    fused_input,
    fused_source,
    moved_with,
    record_cwd,
    record_root,
    recorded_root,
    typed_from,
    typed_together,
)
from annotations.fileio.swaps import SWAP_RECORD, finish_swaps, staged, swap_in, unfinished_swap
from annotations.fileio.temporaries import (
    STAGING,
    TEMPORARY,
    dead_temporaries,
    is_staging,
    is_temporary,
    remove_dead_temporaries,
    remove_if_dead,
)

__all__ = [
    "COMPACT_FACTOR",
    "DEMO_RECORDS",
    "DEMO_SUMMARY_ASIDE",
    "DISK_ERRNOS",
    "FOLDER_LOCK_WAIT_S",
    "FUSE_RECORD",
    "NAME_MAX",
    "NO_CHMOD",
    "NO_FSYNC",
    "OUTPUT_RECORDS",
    "SPEC_NAMES",
    "STAGING",
    "SWAP_RECORD",
    "TEMPORARY",
    "TMP_SUFFIX",
    "UNREADABLE",
    "WINDOWS_CHARS",
    "WINDOWS_DEVICES",
    "YAML11_BOOLS",
    "YAML_MAX_VALUES",
    "append_line",
    "append_lines",
    "atomic_copy",
    "atomic_file",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "check_expanded",
    "check_not_a_file",
    "check_report_file",
    "check_windows_name",
    "compact_manifest",
    "cut_to_bytes",
    "fcntl_module",
    "dead_temporaries",
    "did_you_mean",
    "file_bytes",
    "finish_swaps",
    "first_line",
    "folder_is",
    "folder_locked",
    "fused_input",
    "fused_source",
    "in_the_output",
    "is_dataset_root",
    "is_demo_folder",
    "is_disk_error",
    "is_staging",
    "is_temporary",
    "json_text",
    "moved_with",
    "naming",
    "new_file_mode",
    "not_this_output",
    "output_kind",
    "outputs_around",
    "outputs_inside",
    "own_file",
    "parse_json",
    "parse_yaml",
    "read_bytes",
    "read_json",
    "read_jsonl",
    "read_text",
    "read_yaml",
    "record_cwd",
    "record_root",
    "recorded_root",
    "remove_dead_temporaries",
    "remove_if_dead",
    "same_file",
    "set_mode",
    "spec_file",
    "split_key",
    "staged",
    "swap_in",
    "sync",
    "torch_magic",
    "try_lock",
    "type_and_first_line",
    "typed_from",
    "typed_together",
    "unexpanded",
    "unfinished_swap",
    "unreadable_torch_file",
    "windows_refuses",
    "yaml_scalar",
]
