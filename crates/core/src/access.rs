//! Who may do what: the roles of Sluice's users and the per-DAG `access_control` of DAG files.
//!
//! Roles keep Airflow's names and meanings, each including the one before it: `Viewer` reads, `User` also
//! triggers, clears, pauses and marks runs and tasks, `Op` also manages variables, connections and pools, and
//! `Admin` may do everything, including managing users and other people's API keys.
//!
//! A DAG file may restrict its DAG to some roles with `access_control` (Airflow's shape: role name → DAG actions
//! among `can_read`, `can_edit`, `can_delete`). A DAG without it is open to every role within that role's rights;
//! a DAG with it is open only to the roles it lists, for the actions it lists. Admin is never restricted.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A user's role; later variants include the rights of earlier ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Role {
    Viewer,
    User,
    Op,
    Admin,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Viewer, Role::User, Role::Op, Role::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "Viewer",
            Role::User => "User",
            Role::Op => "Op",
            Role::Admin => "Admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown role {0:?}: expected Viewer, User, Op or Admin")]
pub struct UnknownRole(pub String);

impl FromStr for Role {
    type Err = UnknownRole;

    /// Case-insensitive, as Airflow's simple auth manager reads `ADMIN` and FAB writes `Admin`.
    fn from_str(s: &str) -> Result<Role, UnknownRole> {
        Role::ALL.into_iter().find(|r| r.as_str().eq_ignore_ascii_case(s)).ok_or_else(|| UnknownRole(s.to_owned()))
    }
}

impl Serialize for Role {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Role {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Role, D::Error> {
        let name = String::deserialize(d)?;
        name.parse().map_err(serde::de::Error::custom)
    }
}

/// An action on one DAG, as Airflow's DAG-level permissions name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DagAction {
    /// See the DAG, its runs, task instances and logs.
    CanRead,
    /// Pause, trigger, clear, mark and otherwise change the DAG's runs and task instances.
    CanEdit,
    /// Delete the DAG.
    CanDelete,
}

/// A DAG file's `access_control`: the roles that may use the DAG, and how.
pub type AccessControl = BTreeMap<Role, BTreeSet<DagAction>>;

/// Whether `role` may do `action` on a DAG with this `access_control` (`None`: the DAG sets none).
pub fn dag_allows(access: Option<&AccessControl>, role: Role, action: DagAction) -> bool {
    role == Role::Admin || access.is_none_or(|a| a.get(&role).is_some_and(|actions| actions.contains(&action)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_parse_in_any_case_and_are_ordered_by_rights() {
        assert_eq!("ADMIN".parse::<Role>(), Ok(Role::Admin));
        assert_eq!("viewer".parse::<Role>(), Ok(Role::Viewer));
        assert_eq!("Op".parse::<Role>(), Ok(Role::Op));
        assert!("root".parse::<Role>().is_err());
        assert!(Role::Viewer < Role::User && Role::User < Role::Op && Role::Op < Role::Admin);
    }

    #[test]
    fn access_control_restricts_listed_dags_to_listed_roles_and_actions() {
        let access: AccessControl =
            serde_json::from_str(r#"{"User": ["can_read"], "op": ["can_read", "can_edit"]}"#).unwrap();
        let cases = [
            (None, Role::Viewer, DagAction::CanRead, true),
            (None, Role::Viewer, DagAction::CanDelete, true),
            (Some(&access), Role::Viewer, DagAction::CanRead, false),
            (Some(&access), Role::User, DagAction::CanRead, true),
            (Some(&access), Role::User, DagAction::CanEdit, false),
            (Some(&access), Role::Op, DagAction::CanEdit, true),
            (Some(&access), Role::Op, DagAction::CanDelete, false),
            (Some(&access), Role::Admin, DagAction::CanDelete, true),
        ];
        for (access, role, action, expected) in cases {
            assert_eq!(dag_allows(access, role, action), expected, "{role} {action:?} with {access:?}");
        }
    }

    #[test]
    fn unknown_roles_and_actions_are_refused() {
        assert!(serde_json::from_str::<AccessControl>(r#"{"Guest": ["can_read"]}"#).is_err());
        assert!(serde_json::from_str::<AccessControl>(r#"{"User": ["can_create"]}"#).is_err());
    }
}
