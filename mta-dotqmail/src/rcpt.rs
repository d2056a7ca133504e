//! "Does this local address exist?" for SMTP `RCPT` time: qmail-lspawn's user lookup and
//! qmail-local's `.qmail` search, without delivering anything.

use std::fmt;

use crate::exec::FileLookup;
use crate::interp::DeliveryOptions;
use crate::search::{Mailbox, SearchError, find_mailbox};
use crate::user::{LocalUser, ResolveError, Resolved, UserTable};

/// The answer for one local part.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AddressCheck {
    /// Empty local part: accepted and discarded at delivery.
    Trash,
    /// Mail would be delivered: to this user, through this `.qmail` file or the default
    /// delivery ([`Mailbox::File`] or [`Mailbox::DefaultDelivery`]).
    Exists {
        /// The resolved user (uid, gid, home, dash, ext).
        user: LocalUser,
        /// What applies.
        mailbox: Mailbox,
    },
    /// qmail-local would bounce: `Sorry, no mailbox here by that name. (#5.1.1)`.
    NotFound {
        /// The user whose home was searched (often the alias user).
        user: LocalUser,
    },
    /// The user exists but this process may not search their home (`EACCES`, e.g. a
    /// mode-0700 home read by an unprivileged SMTP server): only the delivery, which runs
    /// as the user, can tell. Accept, and let delivery decide; never answer `451` forever.
    Unverifiable {
        /// The resolved user.
        user: LocalUser,
    },
}

/// The check could not be answered now (reply 4xx).
#[derive(Debug)]
#[non_exhaustive]
pub enum CheckAddressError {
    /// User resolution failed.
    Resolve(ResolveError),
    /// The `.qmail` search failed.
    Search(SearchError),
}

impl fmt::Display for CheckAddressError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CheckAddressError::Resolve(e) => e.fmt(f),
            CheckAddressError::Search(e) => f.write_str(&e.report()),
        }
    }
}

impl std::error::Error for CheckAddressError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            CheckAddressError::Resolve(e) => Some(e),
            CheckAddressError::Search(_) => None,
        }
    }
}

/// Resolves `local` (after virtualdomains prepending) through `users`, then runs the
/// `.qmail` search in the user's home through `fs`.
///
/// ```
/// use mta_dotqmail::{Account, AddressCheck, DeliveryOptions, SystemExecutor, UserTable, check_address};
/// let home = std::env::temp_dir().join("no-such-alias-home-for-doc");
/// let users = UserTable::new(Account::new("alias", 7790, 2108, home.as_os_str().as_encoded_bytes()));
/// let check = check_address(&users, &mut SystemExecutor::new(), b"nobody", &DeliveryOptions::default())?;
/// assert!(matches!(check, AddressCheck::NotFound { .. }));
/// # Ok::<(), mta_dotqmail::CheckAddressError>(())
/// ```
///
/// # Errors
/// [`CheckAddressError`] for a temporary failure (or a uid-0 account) during resolution,
/// or a `.qmail` that cannot be opened or is writable.
pub fn check_address<F: FileLookup + ?Sized>(
    users: &UserTable,
    fs: &mut F,
    local: &[u8],
    options: &DeliveryOptions,
) -> Result<AddressCheck, CheckAddressError> {
    let user = match users.resolve(local).map_err(CheckAddressError::Resolve)? {
        Resolved::User(u) => u,
        Resolved::Trash => return Ok(AddressCheck::Trash),
    };
    match find_mailbox(fs, &user, options) {
        Ok(Mailbox::NotFound) => Ok(AddressCheck::NotFound { user }),
        Ok(mailbox) => Ok(AddressCheck::Exists { user, mailbox }),
        Err(SearchError::Open { error, .. })
            if error.kind() == std::io::ErrorKind::PermissionDenied =>
        {
            Ok(AddressCheck::Unverifiable { user })
        }
        Err(e) => Err(CheckAddressError::Search(e)),
    }
}
