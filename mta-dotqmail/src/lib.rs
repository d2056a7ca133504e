//! mta-dotqmail
