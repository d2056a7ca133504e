//! mta-queue
