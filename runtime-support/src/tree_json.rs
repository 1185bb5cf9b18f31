//! The task tree as data, for `serde` (behind the `serde` feature): a flat
//! list of entries, depth first, each with its depth and its parent's
//! index, so that serializing a tree as deep as memory allows does not
//! recurse (a nested one would, once per level).

use serde::ser::{Serialize, SerializeSeq, SerializeStruct, Serializer};

use crate::tree::{EntryKind, EntryState, TaskTree, TreeEntry, depth_first};

/// `{"entries": [{"index": 0, "parent": null, "depth": 0, "kind": "scope",
/// "name": "main", "location": "src/main.rs:15:20", "state": "running",
/// "reason": null, "waiting_at": "src/main.rs:18:31 (listener.accept().await)",
/// "age_ms": 741}, …]}`: every entry depth first; `parent`
/// is the index of the entry's parent in the list (`null` for a root),
/// `state` one of `running`, `stopping`, `cancelling`, `joining`,
/// `in_cleanup`, `orphaned`, with `reason` the reason's text for the three
/// that have one.
impl Serialize for TaskTree {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut tree = serializer.serialize_struct("TaskTree", 1)?;
        tree.serialize_field("entries", &Flat(self.roots()))?;
        tree.end()
    }
}

/// The entry and everything under it, as [`TaskTree`]'s `entries`.
impl Serialize for TreeEntry {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        Flat(std::slice::from_ref(self)).serialize(serializer)
    }
}

/// Entries under `roots`, flat.
struct Flat<'a>(&'a [TreeEntry]);

impl Serialize for Flat<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut list = serializer.serialize_seq(None)?;
        // The index of the latest entry at each depth: a parent's.
        let mut at_depth: Vec<usize> = Vec::new();
        for (index, (depth, entry)) in depth_first(self.0).enumerate() {
            at_depth.truncate(depth);
            list.serialize_element(&Row {
                index,
                parent: at_depth.last().copied(),
                depth,
                entry,
            })?;
            at_depth.push(index);
        }
        list.end()
    }
}

struct Row<'a> {
    index: usize,
    parent: Option<usize>,
    depth: usize,
    entry: &'a TreeEntry,
}

impl Serialize for Row<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let entry = self.entry;
        let kind = match entry.kind() {
            EntryKind::Scope => "scope",
            EntryKind::Task => "task",
            EntryKind::Shield => "shield",
            EntryKind::Cleanup => "cleanup",
            EntryKind::Supervisor => "supervisor",
        };
        let (state, reason) = match entry.state() {
            EntryState::Running => ("running", None),
            EntryState::Stopping(reason) => ("stopping", Some(reason)),
            EntryState::Cancelling(reason) => ("cancelling", Some(reason)),
            EntryState::Joining => ("joining", None),
            EntryState::InCleanup => ("in_cleanup", None),
            EntryState::Orphaned(reason) => ("orphaned", Some(reason)),
        };
        let age_ms = u64::try_from(entry.age().as_millis()).unwrap_or(u64::MAX);
        let mut row = serializer.serialize_struct("TreeEntry", 10)?;
        row.serialize_field("index", &self.index)?;
        row.serialize_field("parent", &self.parent)?;
        row.serialize_field("depth", &self.depth)?;
        row.serialize_field("kind", kind)?;
        row.serialize_field("name", &entry.name())?;
        row.serialize_field("location", &entry.location().to_string())?;
        row.serialize_field("state", state)?;
        row.serialize_field("reason", &reason.map(ToString::to_string))?;
        row.serialize_field("waiting_at", &entry.waiting_at().map(ToString::to_string))?;
        row.serialize_field("age_ms", &age_ms)?;
        row.end()
    }
}
