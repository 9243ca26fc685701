//! The rules of real NOR flash, the geometry presets and validation, the
//! counters and the time model.

use std::time::Duration;

use embedded_storage::nor_flash::{NorFlash, NorFlashError, NorFlashErrorKind, ReadNorFlash};
use keyway_sim::{
    Ecc32Flash, Error, Geometry, GeometryError, GeometrySpec, Nrf52840Flash, OpKind, SectorRun,
    SimFlash, SmallPagesFlash, Stm32f4Flash,
};

fn spec(write_size: usize, erased: u8) -> GeometrySpec {
    GeometrySpec {
        name: "test".into(),
        sectors: vec![SectorRun {
            count: 8,
            size: 256,
            erase_time: Duration::from_millis(1),
        }],
        write_size,
        read_size: 1,
        erased,
        program_time: Duration::from_micros(1),
        max_writes_per_unit: None,
        ecc: false,
    }
}

#[test]
fn presets_have_the_documented_shapes() {
    let n = Geometry::nrf52840();
    assert_eq!(
        (n.capacity(), n.sectors().len(), n.write_size()),
        (1 << 20, 256, 4)
    );
    assert!(n.is_uniform());
    assert_eq!(n.max_writes_per_unit(), Some(2));

    let s = Geometry::stm32f4();
    assert_eq!(s.capacity(), 1 << 20);
    let sizes: Vec<u32> = s.sectors().iter().map(|s| s.size / 1024).collect();
    assert_eq!(
        sizes,
        [16, 16, 16, 16, 64, 128, 128, 128, 128, 128, 128, 128]
    );
    assert_eq!(s.sectors()[5].start, 0x20000);
    assert!(!s.is_uniform());
    assert_eq!(s.min_sector_size(), 16 * 1024);

    let p = Geometry::small_pages();
    assert!(p.sectors().iter().all(|s| s.size == 512));
    assert_eq!(p.write_size(), 1);

    let e = Geometry::ecc32();
    assert_eq!(
        (e.write_size(), e.min_sector_size(), e.ecc()),
        (32, 128 * 1024, true)
    );

    for name in Geometry::PRESETS {
        assert_eq!(Geometry::preset(name).unwrap().name(), name);
    }
    assert!(Geometry::preset("nrf52").is_none());

    // The aliases fit their presets, and their trait constants say so.
    assert_eq!(Nrf52840Flash::nrf52840().capacity(), 1 << 20);
    assert_eq!(<Stm32f4Flash as NorFlash>::ERASE_SIZE, 16 * 1024);
    assert_eq!(<Ecc32Flash as NorFlash>::WRITE_SIZE, 32);
    assert_eq!(<SmallPagesFlash as ReadNorFlash>::READ_SIZE, 1);
    assert_eq!(
        SmallPagesFlash::small_pages().geometry().sectors().len(),
        512
    );
    assert_eq!(Ecc32Flash::ecc32().geometry().name(), "ecc32");
}

#[test]
fn sector_lookup_follows_mixed_boundaries() {
    let g = Geometry::stm32f4();
    assert_eq!(g.sector_at(0).unwrap().index, 0);
    assert_eq!(g.sector_at(0x3fff).unwrap().index, 0);
    assert_eq!(g.sector_at(0x4000).unwrap().index, 1);
    assert_eq!(g.sector_at(0x1ffff).unwrap().index, 4);
    assert_eq!(g.sector_at(0xfffff).unwrap().index, 11);
    assert!(g.sector_at(0x100000).is_none());
}

#[test]
fn geometry_validation_rejects_bad_parts_without_panicking() {
    for bad in [0, 3, 64, 12] {
        assert_eq!(
            Geometry::new(spec(bad, 0xFF)),
            Err(GeometryError::WriteSize(bad))
        );
    }
    assert_eq!(
        Geometry::new(spec(4, 0x12)),
        Err(GeometryError::ErasedValue(0x12))
    );
    let mut s = spec(4, 0xFF);
    s.sectors.clear();
    assert_eq!(Geometry::new(s), Err(GeometryError::NoSectors));
    let mut s = spec(4, 0xFF);
    s.sectors[0].count = 0;
    assert_eq!(Geometry::new(s), Err(GeometryError::NoSectors));
    let mut s = spec(4, 0xFF);
    s.sectors.push(SectorRun {
        count: 1,
        size: 0,
        erase_time: Duration::ZERO,
    });
    assert_eq!(
        Geometry::new(s),
        Err(GeometryError::ZeroSectorSize { run: 1 })
    );
    let mut s = spec(32, 0xFF);
    s.sectors[0].size = 48;
    assert!(matches!(
        Geometry::new(s),
        Err(GeometryError::SectorNotMultipleOfWrite {
            run: 0,
            size: 48,
            write: 32
        })
    ));
    let mut s = spec(4, 0xFF);
    s.read_size = 512;
    assert!(matches!(
        Geometry::new(s),
        Err(GeometryError::ReadSize { read: 512, .. })
    ));
    let mut s = spec(4, 0xFF);
    s.read_size = 3;
    assert!(matches!(
        Geometry::new(s),
        Err(GeometryError::ReadSize { .. })
    ));
    let mut s = spec(4, 0xFF);
    s.ecc = true;
    assert_eq!(Geometry::new(s), Err(GeometryError::EccNeedsSingleWrite));
    let mut s = spec(4, 0xFF);
    s.max_writes_per_unit = Some(0);
    assert_eq!(Geometry::new(s), Err(GeometryError::ZeroWrites));
    let mut s = spec(4, 0xFF);
    s.sectors[0] = SectorRun {
        count: 1 << 20,
        size: 1 << 13,
        erase_time: Duration::ZERO,
    };
    assert!(matches!(Geometry::new(s), Err(GeometryError::TooLarge(_))));

    assert!(matches!(
        Geometry::custom(4096, 8, 4, f64::NAN, 41.0),
        Err(GeometryError::Timing {
            what: "erase ms",
            ..
        })
    ));
    assert!(matches!(
        Geometry::custom(4096, 8, 4, 85.0, -1.0),
        Err(GeometryError::Timing {
            what: "write µs",
            ..
        })
    ));
    assert_eq!(
        Geometry::custom(4096, 8, 6, 85.0, 41.0),
        Err(GeometryError::WriteSize(6))
    );
    let e = Geometry::custom(1000, 8, 16, 1.0, 1.0).unwrap_err();
    assert_eq!(
        e.to_string(),
        "sector run 0: size 1000 is not a multiple of the 16-byte write size"
    );

    // A custom part from the CLI's four numbers.
    let g = Geometry::custom(2048, 64, 8, 20.0, 12.5).unwrap();
    assert_eq!(g.capacity(), 128 * 1024);
    assert_eq!(g.sectors()[3].erase_time, Duration::from_millis(20));
    assert_eq!(g.program_time(), Duration::from_nanos(12_500));

    // Const parameters that do not fit the geometry are refused.
    let err = SimFlash::<4, 4096>::new(Geometry::stm32f4()).unwrap_err();
    assert!(
        matches!(err, GeometryError::ConstMismatch { g_erase: 16384, .. }),
        "{err}"
    );
    assert!(SimFlash::<8, 4096>::new(Geometry::nrf52840()).is_err());
    assert!(SimFlash::<4, 4096, 4>::new(Geometry::nrf52840()).is_err());
    let mut s = spec(4, 0xFF);
    s.sectors.push(SectorRun {
        count: 1,
        size: 384,
        erase_time: Duration::ZERO,
    });
    // Smallest sector 256, but 384 is not a multiple of it.
    assert!(SimFlash::<4, 256>::new(Geometry::new(s).unwrap()).is_err());
}

/// Checks every rule on one flash; `rewrite_same_ok` says whether writing
/// a unit's value again is allowed (not on ECC flash).
fn check_rules<const W: usize, const E: usize>(mut f: SimFlash<W, E>, rewrite_same_ok: bool) {
    let g = f.geometry().clone();
    let erased = g.erased_value();
    let cap = g.capacity();
    let s1 = g.sectors()[1];

    // Alignment of writes, in offset and in length.
    if W > 1 {
        let e = f.write(s1.start + 2, &[0; W]).unwrap_err();
        assert!(
            matches!(
                e,
                Error::OffsetNotAligned {
                    op: OpKind::Write,
                    ..
                }
            ),
            "{e}"
        );
        assert_eq!(e.kind(), NorFlashErrorKind::NotAligned);
        let e = f.write(s1.start, &vec![0; W + W / 2]).unwrap_err();
        assert!(matches!(e, Error::LengthNotAligned { .. }), "{e}");
        assert_eq!(e.kind(), NorFlashErrorKind::NotAligned);
    }
    // Bounds.
    let e = f.write(cap - W as u32, &vec![0; 2 * W]).unwrap_err();
    assert_eq!(e.kind(), NorFlashErrorKind::OutOfBounds, "{e}");
    let e = f.write(u32::MAX - (W as u32 - 1), &[0; W]).unwrap_err();
    assert_eq!(e.kind(), NorFlashErrorKind::OutOfBounds);
    let mut buf = [0u8; 4];
    assert_eq!(
        f.read(cap - 2, &mut buf).unwrap_err().kind(),
        NorFlashErrorKind::OutOfBounds
    );
    assert_eq!(
        f.erase(0, cap + 1).unwrap_err().kind(),
        NorFlashErrorKind::OutOfBounds
    );
    let e = f.erase(s1.end(), s1.start).unwrap_err();
    assert!(matches!(e, Error::EraseReversed { .. }));
    assert_eq!(e.kind(), NorFlashErrorKind::OutOfBounds);

    // Erase must cover whole sectors: start inside, end inside.
    let e = f.erase(s1.start + W as u32, s1.end()).unwrap_err();
    assert!(matches!(e, Error::PartialSector { sector: 1, .. }), "{e}");
    assert_eq!(e.kind(), NorFlashErrorKind::NotAligned);
    let e = f.erase(s1.start, s1.end() - W as u32).unwrap_err();
    assert!(matches!(e, Error::PartialSector { sector: 1, .. }), "{e}");
    assert_eq!(f.ops(), 0, "refused operations are not counted");

    // Program a unit; programming more bits is legal unless ECC; moving a
    // programmed bit back to erased never is.
    let at = s1.start;
    let mut first = [erased; W];
    first[0] = erased ^ 0b1010_0000;
    f.write(at, &first).unwrap();
    let before = f.as_bytes().to_vec();
    let mut back = [erased; W];
    back[0] = erased ^ 0b0000_0001; // un-programs 0b1010_0000
    let e = f.write(at, &back).unwrap_err();
    if rewrite_same_ok {
        assert!(
            matches!(e, Error::NotErased { offset, .. } if offset == at),
            "{e}"
        );
    } else {
        assert!(matches!(e, Error::TooManyWrites { .. }), "{e}");
    }
    assert_eq!(e.kind(), NorFlashErrorKind::Other);
    assert_eq!(f.as_bytes(), &before[..], "a refused write changes nothing");
    let mut more = first;
    more[0] ^= 0b0000_0101; // programs two more bits
    let second = f.write(at, &more);
    if rewrite_same_ok {
        second.unwrap();
        assert_eq!(f.as_bytes()[at as usize], more[0]);
    } else {
        assert!(matches!(
            second,
            Err(Error::TooManyWrites {
                limit: 1,
                attempt: 2,
                ..
            })
        ));
    }

    // Erase makes it writable again and counts.
    f.erase(s1.start, s1.end()).unwrap();
    assert!(
        f.as_bytes()[s1.start as usize..s1.end() as usize]
            .iter()
            .all(|&b| b == erased)
    );
    f.write(at, &back).unwrap();
    assert_eq!(f.erase_count(1), 1);
    assert_eq!(f.erase_count(0), 0);
    let mut r = vec![0u8; W];
    f.read(at, &mut r).unwrap();
    assert_eq!(r, back);
}

#[test]
fn rules_hold_on_every_preset() {
    check_rules(Nrf52840Flash::nrf52840(), true);
    check_rules(Stm32f4Flash::stm32f4(), true);
    check_rules(SmallPagesFlash::small_pages(), true);
    check_rules(Ecc32Flash::ecc32(), false);
    check_rules(
        SimFlash::<8, 256>::new(Geometry::new(spec(8, 0x00)).unwrap()).unwrap(),
        true,
    );
    check_rules(
        SimFlash::<16, 256>::new(Geometry::new(spec(16, 0xFF)).unwrap()).unwrap(),
        true,
    );
}

#[test]
fn error_messages_name_the_violation() {
    let mut n = Nrf52840Flash::nrf52840();
    // In order: (offset, bytes, the refusal, or `None` where the write is
    // accepted).
    let writes: [(u32, &[u8], Option<&str>); 7] = [
        (
            0x1002,
            &[0; 4],
            Some("write at 0x1002 not aligned to 4-byte words"),
        ),
        (
            0x1000,
            &[0; 6],
            Some("write of 6 bytes at 0x1000 is not a whole number of 4-byte words"),
        ),
        (0x3000, &[0x3c, 0xff, 0xff, 0xff], None),
        (
            0x3000,
            &[0x0f, 0xff, 0xff, 0xff],
            Some("programming 0→1 bits at 0x3000 (byte 0x0f over 0x3c)"),
        ),
        (0x3000, &[0x0c, 0xff, 0xff, 0xff], None),
        (
            0x3000,
            &[0x0c, 0xff, 0xff, 0xff],
            Some(
                "write to the 4-byte word at 0x3000 would be write number 3 since its erase; the part allows 2",
            ),
        ),
        (
            0xffffc,
            &[0; 8],
            Some("write of 8 bytes at 0xffffc runs past the end of the flash (0x100000)"),
        ),
    ];
    for (at, data, refusal) in writes {
        match refusal {
            None => n.write(at, data).unwrap(),
            Some(m) => assert_eq!(n.write(at, data).unwrap_err().to_string(), m),
        }
    }

    let mut s = Stm32f4Flash::stm32f4();
    assert_eq!(
        s.erase(0x4000, 0x5000).unwrap_err().to_string(),
        "erase 0x4000..0x5000 does not cover whole sector 1 (0x4000..0x8000)"
    );
    // Aligned to ERASE_SIZE (16 KiB) but inside the 128 KiB sector 5.
    assert_eq!(
        s.erase(0x20000, 0x24000).unwrap_err().to_string(),
        "erase 0x20000..0x24000 does not cover whole sector 5 (0x20000..0x40000)"
    );
    s.power_off();
    assert_eq!(s.erase(0, 0x4000).unwrap_err().to_string(), "power is cut");

    let mut z = SimFlash::<1, 256>::new(Geometry::new(spec(1, 0x00)).unwrap()).unwrap();
    z.write(0x10, &[0x3c]).unwrap();
    assert_eq!(
        z.write(0x10, &[0xc3]).unwrap_err().to_string(),
        "programming 1→0 bits at 0x10 (byte 0xc3 over 0x3c)"
    );
}

#[test]
fn reads_are_aligned_to_the_read_size() {
    let mut s = spec(4, 0xFF);
    s.read_size = 8;
    let mut f = SimFlash::<4, 256, 8>::new(Geometry::new(s).unwrap()).unwrap();
    assert_eq!(<SimFlash<4, 256, 8> as ReadNorFlash>::READ_SIZE, 8);
    let mut buf = [0u8; 8];
    let e = f.read(4, &mut buf).unwrap_err();
    assert_eq!(e.to_string(), "read at 0x4 not aligned to 8-byte words");
    let mut short = [0u8; 4];
    assert!(matches!(
        f.read(8, &mut short),
        Err(Error::LengthNotAligned {
            op: OpKind::Read,
            ..
        })
    ));
    f.read(8, &mut buf).unwrap();
    assert_eq!(buf, [0xFF; 8]);
    assert_eq!(f.ops(), 0, "reads are not operations");
}

#[test]
fn erase_counters_count_per_sector_and_per_call() {
    let mut f = Stm32f4Flash::stm32f4();
    f.erase(0, 0x10000).unwrap(); // sectors 0..=3 in one call
    f.erase(0x4000, 0x8000).unwrap();
    f.erase(0x20000, 0x60000).unwrap(); // sectors 5 and 6
    f.erase(0x1000, 0x1000).unwrap(); // empty: nothing
    assert_eq!(&f.erase_counts()[..8], &[1, 2, 1, 1, 0, 1, 1, 0]);
    assert_eq!(f.max_erase_count(), 2);
    assert_eq!(f.stats().erase_ops, 3);
    assert_eq!(f.ops(), 3);
    assert_eq!(f.erase_count(99), 0);
    // 5 × 16 KiB at 250 ms + 2 × 128 KiB at 1 s.
    assert_eq!(f.modeled_time(), Duration::from_millis(5 * 250 + 2000));
    f.reset_stats();
    assert_eq!(
        (f.max_erase_count(), f.modeled_time(), f.ops()),
        (0, Duration::ZERO, 3)
    );
}

#[test]
fn time_model_for_300_kib_on_the_nrf52840() {
    let mut f = Nrf52840Flash::nrf52840();
    let image: Vec<u8> = (0..300 * 1024u32)
        .map(|i| (i * 7 + i / 4096) as u8)
        .collect();
    for (page, chunk) in image.chunks(4096).enumerate() {
        let at = 0x40000 + page as u32 * 4096;
        f.erase(at, at + 4096).unwrap();
        f.write(at, chunk).unwrap();
    }
    let expected = 75 * Duration::from_millis(85) + 76_800 * Duration::from_micros(41);
    assert_eq!(expected, Duration::from_micros(9_523_800));
    assert_eq!(f.modeled_time(), expected);
    assert_eq!(f.bytes_written(), 300 * 1024);
    assert_eq!(f.ops(), 150);
    assert_eq!(f.stats().write_ops, 75);
    assert_eq!(f.max_erase_count(), 1);
    assert_eq!(&f.as_bytes()[0x40000..0x40000 + image.len()], &image[..]);
}

#[test]
fn ecc_flash_programs_each_word_once() {
    let mut f = Ecc32Flash::ecc32();
    f.write(0, &[0xFF; 32]).unwrap(); // even erased data uses up the word
    assert!(matches!(
        f.write(0, &[0x00; 32]),
        Err(Error::TooManyWrites { offset: 0, .. })
    ));
    f.write(32, &[0x55; 64]).unwrap();
    assert!(matches!(
        f.write(64, &[0x55; 32]),
        Err(Error::TooManyWrites { offset: 64, .. })
    ));
    assert_eq!(f.writes_at(70), 1);
    f.erase(0, 128 * 1024).unwrap();
    assert_eq!(f.writes_at(70), 0);
    f.write(64, &[0x55; 32]).unwrap();
    // 3 + 1 words programmed, one 128 KiB erase.
    assert_eq!(f.bytes_written(), 128);
    assert_eq!(
        f.modeled_time(),
        Duration::from_secs(1) + 4 * Duration::from_micros(100)
    );
}

#[test]
fn image_round_trips_through_bytes() {
    let mut f = SmallPagesFlash::small_pages();
    f.write(0x200, b"keyway").unwrap();
    let image = f.as_bytes().to_vec();
    let mut g = SmallPagesFlash::from_bytes(Geometry::small_pages(), image.clone()).unwrap();
    assert_eq!(g.as_bytes(), &image[..]);
    let mut buf = [0u8; 6];
    g.read(0x200, &mut buf).unwrap();
    assert_eq!(&buf, b"keyway");
    assert_eq!(g.writes_at(0x200), 1);
    assert_eq!(g.into_bytes(), image);
    assert!(matches!(
        SmallPagesFlash::from_bytes(Geometry::small_pages(), vec![0xFF; 10]),
        Err(GeometryError::ImageSize { got: 10, .. })
    ));
    // A loaded ECC image refuses a second write to its programmed words.
    let mut img = vec![0xFF; 1 << 20];
    img[40] = 0;
    let mut e = Ecc32Flash::from_bytes(Geometry::ecc32(), img).unwrap();
    assert!(matches!(
        e.write(32, &[0; 32]),
        Err(Error::TooManyWrites { .. })
    ));
    e.write(0, &[0; 32]).unwrap();
}

/// Generic code that knows only the embedded-storage traits.
fn through_traits<F: NorFlash>(f: &mut F) -> Result<Vec<u8>, NorFlashErrorKind> {
    let sector = F::ERASE_SIZE as u32;
    embedded_storage::nor_flash::check_erase(f, sector, 2 * sector)?;
    f.erase(sector, 2 * sector).map_err(|e| e.kind())?;
    let data = vec![0x5A; F::WRITE_SIZE * 4];
    f.write(sector, &data).map_err(|e| e.kind())?;
    let mut back = vec![0; data.len()];
    f.read(sector, &mut back).map_err(|e| e.kind())?;
    f.write(sector + 1, &data).map_err(|e| e.kind())?;
    Ok(back)
}

#[test]
fn embedded_storage_traits_work_generically() {
    let mut n = Nrf52840Flash::nrf52840();
    assert_eq!(through_traits(&mut n), Err(NorFlashErrorKind::NotAligned));
    assert_eq!(n.as_bytes()[4096..4096 + 16], [0x5A; 16]);
    let mut e = Ecc32Flash::ecc32();
    assert_eq!(through_traits(&mut e), Err(NorFlashErrorKind::NotAligned));
    // Byte writes: the shifted second write is aligned, and it rewrites
    // 0x5A over 0x5A (and over erased bytes), which is legal.
    let mut p = SmallPagesFlash::small_pages();
    assert_eq!(through_traits(&mut p).unwrap(), vec![0x5A; 4]);
    // Through `&mut F` as well (embedded-storage's blanket impl).
    let mut s = Stm32f4Flash::stm32f4();
    let mut r = &mut s;
    assert_eq!(through_traits(&mut r), Err(NorFlashErrorKind::NotAligned));
    assert_eq!(s.erase_count(1), 1);
}
