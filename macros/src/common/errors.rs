//! [`Errors`]: collects every mistake in a macro's input, so one compile
//! shows them all.

use std::cell::RefCell;

/// Collects `syn::Error`s and must be checked (`finish`) before it is
/// dropped: a dropped collector with errors in it is a bug in the macro.
pub(crate) struct Errors {
    errors: RefCell<Option<Vec<syn::Error>>>,
}

impl Errors {
    pub(crate) fn new() -> Self {
        Errors {
            errors: RefCell::new(Some(Vec::new())),
        }
    }

    /// Records an error spanned on `tokens`.
    pub(crate) fn error_spanned_by<T: quote::ToTokens>(
        &self,
        tokens: T,
        message: impl std::fmt::Display,
    ) {
        self.push(syn::Error::new_spanned(tokens, message));
    }

    /// Records an error.
    pub(crate) fn push(&self, error: syn::Error) {
        if let Some(errors) = self.errors.borrow_mut().as_mut() {
            errors.push(error);
        }
    }

    /// Records the error of `result`, if any, and passes its value on.
    pub(crate) fn take<T>(&self, result: syn::Result<T>) -> Option<T> {
        result.map_err(|error| self.push(error)).ok()
    }

    /// `Ok` when nothing was recorded; otherwise every error, combined.
    pub(crate) fn finish(self) -> syn::Result<()> {
        let errors = self.errors.borrow_mut().take().unwrap_or_default();
        let mut errors = errors.into_iter();
        match errors.next() {
            None => Ok(()),
            Some(mut first) => {
                for error in errors {
                    first.combine(error);
                }
                Err(first)
            }
        }
    }
}

impl Drop for Errors {
    fn drop(&mut self) {
        // Not a panic: a panic in a proc macro is what we promise never to
        // show a user. Forgetting `finish` loses errors, which tests catch.
        debug_assert!(
            std::thread::panicking() || self.errors.borrow().is_none(),
            "Errors dropped without `finish`"
        );
    }
}
