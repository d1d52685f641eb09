//! gadget_sdk_rs: the Rust twin of gadget_sdk.c, a gadget module written
//! with the Rust SDK (sdk/rust), checked against the real host by the same
//! test (gadget_test.go). Its init derives target_syscall from the param
//! syscall, its start opens the map counts and checks its shape, it keeps
//! the events whose arg1 is even, and its stop logs how many keys counts
//! has and their sum.

use sluice::gadget::{self, Map};
use sluice::{Event, Gadget, Level, Output, Stage};

#[derive(Default)]
struct Syscalls {
    counts: Option<Map>,
}

impl Stage for Syscalls {
    fn process(&mut self, ev: &Event, out: &mut Output) -> Result<(), String> {
        if ev.uint("arg1").unwrap_or(1) & 1 == 0 {
            out.keep();
        }
        Ok(())
    }
}

impl Gadget for Syscalls {
    fn gadget_init(&mut self) -> Result<(), String> {
        let name = gadget::param("syscall").map_err(|e| format!("param syscall: {}", e))?;
        let nr = gadget::syscall_number(&name).map_err(|e| format!("syscall {}: {}", name, e))?;
        gadget::set_param("target_syscall", &nr.to_string()).map_err(|e| format!("set target_syscall: {}", e))
    }

    fn gadget_start(&mut self) -> Result<(), String> {
        let counts = Map::open("counts").map_err(|e| format!("map counts: {}", e))?;
        let info = counts.info().map_err(|e| format!("map counts: {}", e))?;
        if info.key_size != 4 || info.value_size != 8 {
            return Err("map counts is not u32 -> u64".to_string());
        }
        self.counts = Some(counts);
        Ok(())
    }

    fn gadget_stop(&mut self) -> Result<(), String> {
        let counts = self.counts.ok_or("gadget_stop before gadget_start")?;
        let (mut keys, mut sum) = (0, 0u64);
        let mut key = [0u8; 4];
        let mut at: Option<[u8; 4]> = None;
        while counts.next_key(at.as_ref().map(|k| &k[..]), &mut key).map_err(|e| e.to_string())? {
            let mut v = [0u8; 8];
            if counts.lookup(&key, &mut v).is_ok() {
                keys += 1;
                sum += u64::from_le_bytes(v);
            }
            at = Some(key);
        }
        let name = gadget::syscall_name(0).unwrap_or_default();
        sluice::log(Level::Info, &format!("counts: {} keys, sum {}; syscall 0 is {}", keys, sum, name));
        Ok(())
    }
}

sluice::export_gadget!(Syscalls);
