//! The lock's one NOR flash, shared: the agent's owner store and the
//! shell's journal, slots and audit log each hold a [`Shared`] handle, as
//! a lock's flash driver is one peripheral used by both.

use core::cell::RefCell;

use embedded_storage::nor_flash::{
    ErrorType, NorFlash, NorFlashError, NorFlashErrorKind, ReadNorFlash,
};

/// A handle to the lock's one NOR flash (the agent's store and the
/// shell's journal, slots and audit log share it; every operation borrows
/// it for its own duration only).
pub struct Shared<'a, F>(pub &'a RefCell<F>);

impl<F> Clone for Shared<'_, F> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<F> Copy for Shared<'_, F> {}

/// A flash operation through a [`Shared`] handle failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SharedError<E> {
    /// The flash was borrowed already (never, on a single-threaded lock
    /// where no flash operation calls another).
    Busy,
    /// The driver's error.
    Flash(E),
}

impl<E: NorFlashError> NorFlashError for SharedError<E> {
    fn kind(&self) -> NorFlashErrorKind {
        match self {
            SharedError::Busy => NorFlashErrorKind::Other,
            SharedError::Flash(e) => e.kind(),
        }
    }
}

/// The error of the lock's flash handle over the driver `F`.
pub type FlashError<F> = SharedError<<F as ErrorType>::Error>;

impl<F: NorFlash> Shared<'_, F> {
    fn with<T>(&self, f: impl FnOnce(&mut F) -> Result<T, F::Error>) -> Result<T, FlashError<F>> {
        let mut flash = self.0.try_borrow_mut().map_err(|_| SharedError::Busy)?;
        f(&mut flash).map_err(SharedError::Flash)
    }
}

impl<F: NorFlash> ErrorType for Shared<'_, F> {
    type Error = FlashError<F>;
}

impl<F: NorFlash> ReadNorFlash for Shared<'_, F> {
    const READ_SIZE: usize = 1;
    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), Self::Error> {
        self.with(|f| f.read(offset, bytes))
    }
    /// The driver's (0 while the flash is borrowed, which a
    /// single-threaded lock never sees).
    fn capacity(&self) -> usize {
        self.0.try_borrow().map_or(0, |f| f.capacity())
    }
}

impl<F: NorFlash> NorFlash for Shared<'_, F> {
    const WRITE_SIZE: usize = F::WRITE_SIZE;
    const ERASE_SIZE: usize = F::ERASE_SIZE;
    fn erase(&mut self, from: u32, to: u32) -> Result<(), Self::Error> {
        self.with(|f| f.erase(from, to))
    }
    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), Self::Error> {
        self.with(|f| f.write(offset, bytes))
    }
}
