//! drop-comm-rs is the drop-comm stage written with the Rust SDK
//! (sdk/rust): it drops events whose comm is one of the names in the param
//! comms, and counts them (counter "dropped").
//!
//!     params = { comms = ["sshd", "systemd-journal"] }

use sluice::{Event, Output, Params, Stage, Value};

/// The names are few (the C twin allows 256): a linear scan beats hashing.
#[derive(Default)]
struct DropComm {
    comms: Vec<Vec<u8>>,
}

impl Stage for DropComm {
    fn init(&mut self, params: Params) -> Result<(), String> {
        for key in params.keys() {
            if key != "comms" {
                return Err(format!("params: unknown param {:?} (known: comms)", key));
            }
        }
        let list = match params.get("comms") {
            None => return Err("params.comms: missing; give the names to drop, e.g. comms = [\"sshd\"]".to_string()),
            Some(v @ Value::Array(..)) => v,
            Some(_) => return Err("params.comms: want a list of strings".to_string()),
        };
        for (i, el) in list.elements().enumerate() {
            match el {
                Value::Str(s) if s.is_empty() => {
                    return Err(format!("params.comms[{}]: an empty name matches nothing; remove it", i))
                }
                Value::Str(s) => self.comms.push(s.to_vec()),
                _ => return Err(format!("params.comms[{}]: want a string", i)),
            }
        }
        Ok(())
    }

    fn process(&mut self, ev: &Event, out: &mut Output) -> Result<(), String> {
        match ev.str_bytes("comm") {
            Some(comm) if self.comms.iter().any(|c| c.as_slice() == comm) => sluice::counter_add("dropped", 1),
            _ => out.keep(),
        }
        Ok(())
    }
}

sluice::export_stage!(DropComm);
