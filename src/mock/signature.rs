//! The mock's thinking signatures: base64 of `mock-sig:MODEL:N`, so a block carries the model
//! that made it (as a real signature binds its block to its model) while looking as opaque
//! as a real one. The rules read it back to refuse a block the target model cannot read.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

const PREFIX: &str = "mock-sig:";

/// The signature of the `number`th answer's thinking, made by `model`.
pub(crate) fn encode(model: &str, number: u64) -> String {
    STANDARD.encode(format!("{PREFIX}{model}:{number}"))
}

/// The model that made a block signed `signature`, when the mock signed it.
pub(crate) fn decode(signature: &str) -> Option<String> {
    let bytes = STANDARD.decode(signature).ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let (model, number) = text.strip_prefix(PREFIX)?.rsplit_once(':')?;
    number.parse::<u64>().ok()?;
    (!model.is_empty()).then(|| model.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_names_its_model() {
        let signature = encode("claude-opus-5-5", 7);
        assert!(!signature.contains("claude"), "opaque: {signature}");
        assert_eq!(Some("claude-opus-5-5".to_owned()), decode(&signature));
    }

    #[test]
    fn anything_else_is_no_mock_signature() {
        for other in [
            "",
            "EqQKKAgC",
            "not base64!",
            &STANDARD.encode("mock-sig::1"),
        ] {
            assert_eq!(None, decode(other), "{other}");
        }
        assert_eq!(None, decode(&STANDARD.encode("mock-sig:m:x")));
    }
}
