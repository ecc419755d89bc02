//! Task groups in a file: reading the nested `tasks:` and `groups:` lists, and flattening them into the spec's one
//! task list, with full ids, resolved dependencies and merged settings.
//!
//! A name in `depends_on` is looked up from where it is written outwards: among the tasks and groups next to the
//! writer, then in each enclosing group, then at the top of the file; a full id (`outer.inner.task`) therefore always
//! works, and so does a path relative to an enclosing group. As in Airflow, a dependency on a group means the group's
//! leaves (its tasks with no downstream task inside it), and a group's own `depends_on` applies to its roots (its
//! tasks with no upstream task inside it). Both only depend on the dependencies inside the group, so they are
//! computed innermost group first.

use std::collections::{BTreeSet, HashMap};

use serde::Deserialize;
use serde::de::IgnoredAny;

use super::DagError;
use super::node::{self, Kind, Node, NodeError, Seg};
use crate::spec::{TaskArgs, TaskGroup, TaskSpec};

/// Where a task or group is in the file, from the root.
pub(crate) type Path = Vec<Seg<'static>>;

/// Every task and group of a file, flattened.
pub(crate) struct Flat {
    pub tasks: Vec<TaskSpec>,
    pub task_paths: Vec<Path>,
    /// Fields left out of each task because they had errors.
    pub task_dropped: Vec<Vec<String>>,
    pub groups: Vec<TaskGroup>,
    pub group_paths: Vec<Path>,
    /// Full ids of the tasks and groups that failed to read: names of them are known, but lead nowhere.
    pub unread_ids: Vec<String>,
}

/// A group as written, without its `tasks` and `groups`, which are read one by one so that a bad task does not hide
/// the others.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GroupHeader {
    id: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    default_args: TaskArgs,
    #[serde(default)]
    depends_on: Vec<String>,
    // Named so that a misspelt `tasks` or `groups` gets a "did you mean".
    #[serde(default, rename = "tasks")]
    _tasks: IgnoredAny,
    #[serde(default, rename = "groups")]
    _groups: IgnoredAny,
}

struct ReadTask<'a> {
    spec: TaskSpec,
    group: Option<usize>,
    node: &'a Node,
    path: Path,
    dropped: Vec<String>,
}

struct ReadGroup<'a> {
    header: GroupHeader,
    full_id: String,
    parent: Option<usize>,
    /// The group's `default_args` over its enclosing groups'.
    args: TaskArgs,
    node: &'a Node,
    path: Path,
}

/// What a name in `depends_on` resolved to.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Ref {
    Task(usize),
    Group(usize),
    /// A task or group that failed to read (its errors are reported already), by full id.
    Unread(String),
}

/// One name of a `depends_on`: `target` waits for `source`.
struct Decl {
    target: Ref,
    source: Ref,
}

/// Reads the tasks and groups of the file's root mapping, recursively.
pub(crate) fn read<'a>(file: &'a str, root: &'a Node, node_errors: &mut Vec<NodeError>) -> (Flat, Vec<DagError>) {
    let mut walk =
        Walk { file, node_errors, tasks: Vec::new(), groups: Vec::new(), unread: Vec::new(), errors: Vec::new() };
    walk.items(root, &Vec::new(), None);
    walk.flatten()
}

struct Walk<'a, 'e> {
    file: &'a str,
    node_errors: &'e mut Vec<NodeError>,
    tasks: Vec<ReadTask<'a>>,
    groups: Vec<ReadGroup<'a>>,
    /// The full ids of what failed to read.
    unread: Vec<String>,
    errors: Vec<DagError>,
}

impl<'a> Walk<'a, '_> {
    fn error(&mut self, node: &Node, message: impl Into<String>) {
        self.errors.push(DagError::new(self.file, node.loc, message));
    }

    fn full_id(&self, group: Option<usize>, id: &str) -> String {
        match group {
            Some(g) => format!("{}.{id}", self.groups[g].full_id),
            None => id.to_owned(),
        }
    }

    /// The `tasks` and `groups` of a mapping (the file, or a group), in file order.
    fn items(&mut self, container: &'a Node, path: &Path, group: Option<usize>) {
        let Kind::Map(entries) = &container.kind else {
            return;
        };
        for (key, value) in entries {
            let (key, what) = match key.as_str() {
                Some("tasks") => ("tasks", "tasks"),
                Some("groups") => ("groups", "task groups"),
                _ => continue,
            };
            let Kind::Seq(items) = &value.kind else {
                self.error(value, format!("`{key}` must be a list of {what}"));
                continue;
            };
            for (i, item) in items.iter().enumerate() {
                let mut item_path = path.clone();
                item_path.extend([Seg::Key(key), Seg::Index(i)]);
                if key == "tasks" {
                    self.task(item, item_path, group);
                } else {
                    self.group(item, item_path, group);
                }
            }
        }
    }

    fn task(&mut self, node: &'a Node, path: Path, group: Option<usize>) {
        let read = node::deserialize_collecting::<TaskSpec>(node, self.node_errors);
        let Some(spec) = read.value else {
            if let Some(id) = node.get("id").and_then(Node::as_str) {
                self.unread.push(self.full_id(group, id));
            }
            return;
        };
        if let Some((key, _)) = node.entry("group") {
            self.error(
                key,
                format!("task `{}`: a task is put in a group by writing it in the group's `tasks`", spec.id),
            );
        }
        self.tasks.push(ReadTask { spec, group, node, path, dropped: read.dropped });
    }

    fn group(&mut self, node: &'a Node, path: Path, parent: Option<usize>) {
        let read = node::deserialize_collecting::<GroupHeader>(node, self.node_errors);
        let Some(header) = read.value else {
            if let Some(id) = node.get("id").and_then(Node::as_str) {
                self.unread.push(self.full_id(parent, id));
            }
            return;
        };
        let full_id = self.full_id(parent, &header.id);
        let mut args = match parent {
            Some(p) => header.default_args.or(&self.groups[p].args),
            None => header.default_args.clone(),
        };
        // A bad template is reported here, at the group, rather than again in every task it would be merged into.
        for (key, value) in &header.default_args.env {
            if let Err(message) = crate::template::check_syntax(value) {
                let at = node.find(&[Seg::Key("default_args"), Seg::Key("env"), Seg::Key(key)]);
                self.error(at, format!("template error in group `{full_id}` default_args.env.{key}: {message}"));
                args.env.remove(key);
            }
        }
        let index = self.groups.len();
        self.groups.push(ReadGroup { header, full_id, parent, args, node, path: path.clone() });
        self.items(node, &path, Some(index));
    }

    /// `group` and the groups around it, innermost first.
    fn chain(&self, group: Option<usize>) -> impl Iterator<Item = usize> + '_ {
        std::iter::successors(group, |g| self.groups[*g].parent)
    }

    /// Whether `r` is inside `group`: one of its tasks, or a group or task further in (a group is not inside itself).
    fn inside(&self, r: &Ref, group: usize) -> bool {
        match r {
            Ref::Task(t) => self.chain(self.tasks[*t].group).any(|g| g == group),
            Ref::Group(k) => self.chain(self.groups[*k].parent).any(|g| g == group),
            Ref::Unread(id) => id.starts_with(&format!("{}.", self.groups[group].full_id)),
        }
    }

    fn lookup(&self, names: &HashMap<String, Ref>, name: &str, scope: Option<usize>) -> Option<Ref> {
        self.chain(scope)
            .map(|g| format!("{}.{name}", self.groups[g].full_id))
            .chain(std::iter::once(name.to_owned()))
            .find_map(|candidate| names.get(&candidate).cloned())
    }

    /// The names visible from `scope`, for "did you mean".
    fn visible(&self, scope: Option<usize>) -> Vec<String> {
        let scopes: Vec<Option<usize>> = self.chain(scope).map(Some).chain(std::iter::once(None)).collect();
        let short = |group: Option<usize>, id: &str| scopes.contains(&group).then(|| id.to_owned());
        let tasks = self.tasks.iter().filter_map(|t| short(t.group, &t.spec.id));
        let groups = self.groups.iter().filter_map(|g| short(g.parent, &g.header.id));
        let full = self.tasks.iter().map(|t| self.full_id(t.group, &t.spec.id));
        tasks.chain(groups).chain(full).chain(self.groups.iter().map(|g| g.full_id.clone())).collect()
    }

    /// Every task and group by its full id.
    fn names(&self) -> HashMap<String, Ref> {
        let mut names: HashMap<String, Ref> = HashMap::new();
        for (i, t) in self.tasks.iter().enumerate() {
            names.entry(self.full_id(t.group, &t.spec.id)).or_insert(Ref::Task(i));
        }
        for (g, group) in self.groups.iter().enumerate() {
            names.entry(group.full_id.clone()).or_insert(Ref::Group(g));
        }
        for id in &self.unread {
            names.entry(id.clone()).or_insert_with(|| Ref::Unread(id.clone()));
        }
        names
    }

    /// Resolves every `depends_on` name, reporting the unknown and the impossible ones.
    fn declarations(&mut self) -> Vec<Decl> {
        let names = self.names();
        let mut decls = Vec::new();
        let mut errors = Vec::new();
        let writers = (0..self.tasks.len()).map(Ref::Task).chain((0..self.groups.len()).map(Ref::Group));
        for writer in writers {
            let (what, id, node, scope, deps) = match &writer {
                Ref::Task(t) => {
                    let t = &self.tasks[*t];
                    ("task", self.full_id(t.group, &t.spec.id), t.node, t.group, &t.spec.depends_on)
                }
                Ref::Group(g) => {
                    let g = &self.groups[*g];
                    ("group", g.full_id.clone(), g.node, g.parent, &g.header.depends_on)
                }
                Ref::Unread(_) => continue,
            };
            for (j, dep) in deps.iter().enumerate() {
                let at = node.find(&[Seg::Key("depends_on"), Seg::Index(j)]).loc;
                let problem = match self.lookup(&names, dep, scope) {
                    None => Some(format!(
                        "{what} `{id}` depends on `{dep}`, which is not a task or task group of this DAG{}",
                        super::suggest::hint(dep, self.visible(scope).iter().map(String::as_str))
                    )),
                    Some(Ref::Group(g)) if matches!(writer, Ref::Group(w) if w == g) => {
                        Some(format!("group `{id}` depends on itself"))
                    }
                    Some(Ref::Group(g)) if self.inside(&writer, g) => {
                        Some(format!("{what} `{id}` depends on `{dep}`, a group it is in"))
                    }
                    Some(source) if matches!(writer, Ref::Group(w) if self.inside(&source, w)) => {
                        Some(format!("group `{id}` depends on `{dep}`, which is inside it"))
                    }
                    Some(source) => {
                        decls.push(Decl { target: writer.clone(), source });
                        None
                    }
                };
                errors.extend(problem.map(|message| DagError::new(self.file, at, message)));
            }
        }
        self.errors.extend(errors);
        decls
    }

    /// Each group's roots and leaves, as task indices, from the dependencies declared inside it.
    fn ends(&self, decls: &[Decl]) -> (Vec<BTreeSet<usize>>, Vec<BTreeSet<usize>>) {
        let mut roots = vec![BTreeSet::new(); self.groups.len()];
        let mut leaves = vec![BTreeSet::new(); self.groups.len()];
        // A group comes after its parent, so going backwards reaches every group after the groups inside it.
        for g in (0..self.groups.len()).rev() {
            let members: BTreeSet<usize> = (0..self.tasks.len()).filter(|t| self.inside(&Ref::Task(*t), g)).collect();
            let (mut r, mut l) = (members.clone(), members);
            for decl in decls.iter().filter(|d| self.inside(&d.target, g) && self.inside(&d.source, g)) {
                for t in expand(&decl.target, &roots) {
                    r.remove(&t);
                }
                for t in expand(&decl.source, &leaves) {
                    l.remove(&t);
                }
            }
            roots[g] = r;
            leaves[g] = l;
        }
        (roots, leaves)
    }

    fn flatten(mut self) -> (Flat, Vec<DagError>) {
        let decls = self.declarations();
        let (roots, leaves) = self.ends(&decls);
        let full_ids: Vec<String> = self.tasks.iter().map(|t| self.full_id(t.group, &t.spec.id)).collect();
        // A mapped task in a group names the task whose output it expands over as `depends_on` names tasks.
        let names = self.names();
        let resolved: Vec<Vec<(usize, String)>> = self
            .tasks
            .iter()
            .map(|t| {
                let outputs = t.spec.map_sources().enumerate().filter_map(|(k, s)| Some((k, s.upstream()?)));
                outputs
                    .filter_map(|(k, name)| match self.lookup(&names, name, t.group) {
                        Some(Ref::Task(u)) => Some((k, full_ids[u].clone())),
                        _ => None,
                    })
                    .collect()
            })
            .collect();
        let mut depends_on: Vec<Vec<String>> = vec![Vec::new(); self.tasks.len()];
        for decl in &decls {
            let sources: Vec<String> = match &decl.source {
                Ref::Unread(id) => vec![id.clone()],
                source => expand(source, &leaves).into_iter().map(|t| full_ids[t].clone()).collect(),
            };
            for target in expand(&decl.target, &roots) {
                for source in &sources {
                    if !depends_on[target].contains(source) {
                        depends_on[target].push(source.clone());
                    }
                }
            }
        }
        let mut flat = Flat {
            tasks: Vec::with_capacity(self.tasks.len()),
            task_paths: Vec::with_capacity(self.tasks.len()),
            task_dropped: Vec::with_capacity(self.tasks.len()),
            groups: self
                .groups
                .iter()
                .map(|g| TaskGroup {
                    id: g.full_id.clone(),
                    parent: g.parent.map(|p| self.groups[p].full_id.clone()),
                    description: g.header.description.clone(),
                })
                .collect(),
            group_paths: self.groups.iter().map(|g| g.path.clone()).collect(),
            unread_ids: self.unread,
        };
        for (((task, id), deps), outputs) in self.tasks.into_iter().zip(full_ids).zip(depends_on).zip(resolved) {
            let mut spec = task.spec;
            for (k, full) in outputs {
                spec.set_map_upstream(k, full);
            }
            if let Some(g) = task.group {
                spec.set_task_args(spec.task_args().or(&self.groups[g].args));
            }
            spec.id = id;
            spec.group = task.group.map(|g| self.groups[g].full_id.clone());
            spec.depends_on = deps;
            flat.tasks.push(spec);
            flat.task_paths.push(task.path);
            flat.task_dropped.push(task.dropped);
        }
        (flat, self.errors)
    }
}

/// The tasks a reference stands for: a task itself, a group's `ends` (its roots or its leaves).
fn expand(r: &Ref, ends: &[BTreeSet<usize>]) -> Vec<usize> {
    match r {
        Ref::Task(t) => vec![*t],
        Ref::Group(g) => ends[*g].iter().copied().collect(),
        Ref::Unread(_) => Vec::new(),
    }
}
