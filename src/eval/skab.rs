//! SKAB scoring (in progress).
