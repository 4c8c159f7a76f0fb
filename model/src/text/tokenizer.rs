//! The tokenizer a GGUF carries, built here rather than by candle because
//! candle leaves its builder out of WebAssembly builds. A byte-level
//! vocabulary (`gpt2`, as SmolLM2's is) is a BPE over bytes spelled as
//! characters; a SentencePiece one (`llama`, as Gemma's is) is built as
//! transformers builds it from the same file: a BPE with byte fallback
//! whose merges are recovered from the vocabulary, spaces written `▁`, and
//! the control and user-defined tokens matched whole.

use std::collections::HashMap;

use candle_core::quantized::gguf_file::{Content, Value};
use tokenizers::decoders::byte_fallback::ByteFallback;
use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::decoders::fuse::Fuse;
use tokenizers::decoders::sequence::Sequence;
use tokenizers::models::bpe::{BPE, Vocab};
use tokenizers::normalizers::Replace;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::processors::template::TemplateProcessing;
use tokenizers::{AddedToken, DecoderWrapper, SplitDelimiterBehavior, Tokenizer};

/// SentencePiece's space.
const SPACE: &str = "\u{2581}";

/// llama.cpp's token types.
const NORMAL: i32 = 1;
const CONTROL: i32 = 3;
const USER_DEFINED: i32 = 4;

/// The tokenizer `content` describes.
pub fn tokenizer_from_gguf(content: &Content) -> Result<Tokenizer, String> {
    match string(content, "tokenizer.ggml.model")?.as_str() {
        "gpt2" => byte_level_tokenizer(content),
        "llama" if string(content, "general.architecture")?.starts_with("gemma") => {
            gemma_tokenizer(content)
        }
        other => Err(format!(
            "its tokenizer is {other:?}: byte-level (gpt2) and Gemma's SentencePiece are supported"
        )),
    }
}

fn string(content: &Content, key: &str) -> Result<String, String> {
    content
        .metadata
        .get(key)
        .and_then(|v| v.to_string().ok().cloned())
        .ok_or_else(|| format!("the GGUF has no {key}"))
}

fn array<'a>(content: &'a Content, key: &str) -> Result<&'a [Value], String> {
    content
        .metadata
        .get(key)
        .and_then(|v| v.to_vec().ok())
        .map(Vec::as_slice)
        .ok_or_else(|| format!("the GGUF has no {key}"))
}

fn token_id(content: &Content, key: &str) -> Result<u32, String> {
    content
        .metadata
        .get(key)
        .and_then(|v| v.to_u32().ok())
        .ok_or_else(|| format!("the GGUF has no {key}"))
}

fn strings(content: &Content, key: &str) -> Result<Vec<String>, String> {
    array(content, key)?
        .iter()
        .map(|v| v.to_string().cloned().map_err(|e| format!("{key}: {e}")))
        .collect()
}

/// A byte-level vocabulary, split into words as GPT-2 splits them. Tokens
/// llama.cpp types as anything but normal or byte (control, user-defined,
/// unused) and the named ones (bos, eos, padding) are matched whole and
/// left out of decoded text, as candle's builder did.
fn byte_level_tokenizer(content: &Content) -> Result<Tokenizer, String> {
    let tokens = strings(content, "tokenizer.ggml.tokens")?;
    let merges = strings(content, "tokenizer.ggml.merges")?
        .into_iter()
        .map(|merge| match merge.split_once(' ') {
            Some((left, right)) => Ok((left.to_string(), right.to_string())),
            None => Err(format!("the GGUF has a merge without a space: {merge:?}")),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let vocab: Vocab = tokens
        .iter()
        .enumerate()
        .map(|(id, token)| (token.clone(), id as u32))
        .collect();
    let bpe = BPE::builder()
        .vocab_and_merges(vocab, merges)
        .build()
        .map_err(|e| e.to_string())?;
    let mut tokenizer = Tokenizer::new(bpe);
    tokenizer.with_pre_tokenizer(Some(ByteLevel::default()));
    tokenizer.with_decoder(Some(ByteLevelDecoder::default()));
    tokenizer.with_post_processor(Some(ByteLevel::default()));
    let types = array(content, "tokenizer.ggml.token_type").unwrap_or_default();
    let typed = types
        .iter()
        .enumerate()
        .filter(|(_, kind)| matches!(kind.to_i32(), Ok(2..=5)))
        .map(|(id, _)| id as u32);
    let named = [
        "tokenizer.ggml.bos_token_id",
        "tokenizer.ggml.eos_token_id",
        "tokenizer.ggml.padding_token_id",
        "tokenizer.ggml.seperator_token_id",
        "tokenizer.ggml.unknown_token_id",
    ]
    .into_iter()
    .filter_map(|key| token_id(content, key).ok());
    let mut special: Vec<u32> = typed.chain(named).collect();
    special.sort_unstable();
    special.dedup();
    let special: Vec<AddedToken> = special
        .into_iter()
        .filter_map(|id| tokens.get(id as usize))
        .map(|token| AddedToken::from(token.clone(), true))
        .collect();
    tokenizer
        .add_special_tokens(special)
        .map_err(|e| e.to_string())?;
    Ok(tokenizer)
}

/// Gemma's vocabulary. Its file stores runs of spaces as spaces, where the
/// merges need `▁`s; and its merge order is the tokens' order in the file,
/// not their scores.
fn gemma_tokenizer(content: &Content) -> Result<Tokenizer, String> {
    let tokens = strings(content, "tokenizer.ggml.tokens")?;
    let types: Vec<i32> = array(content, "tokenizer.ggml.token_type")?
        .iter()
        .map(|v| v.to_i32().map_err(|e| e.to_string()))
        .collect::<Result<_, _>>()?;
    if types.len() != tokens.len() {
        return Err(format!(
            "the GGUF has {} tokens but {} token types",
            tokens.len(),
            types.len()
        ));
    }
    // Runs of spaces stop being user-defined tokens once respelled, as in
    // transformers: their stored spelling is no longer in the vocabulary.
    let mut types = types;
    let spelled: Vec<String> = tokens
        .into_iter()
        .zip(&mut types)
        .map(|(token, kind)| {
            if token.contains(' ') && token.trim().is_empty() {
                *kind = NORMAL;
                SPACE.repeat(token.chars().count())
            } else {
                token
            }
        })
        .collect();
    let whole = |kind: i32, special: bool| -> Vec<AddedToken> {
        spelled
            .iter()
            .zip(&types)
            .filter(|(_, t)| **t == kind)
            .map(|(token, _)| AddedToken::from(token.clone(), special).normalized(false))
            .collect()
    };
    let (control, user_defined) = (whole(CONTROL, true), whole(USER_DEFINED, false));
    let spelling = |key: &str| -> Result<String, String> {
        let id = token_id(content, key)? as usize;
        spelled
            .get(id)
            .cloned()
            .ok_or_else(|| format!("{key} {id} is outside the vocabulary"))
    };
    let (unknown, bos_token) = (
        spelling("tokenizer.ggml.unknown_token_id")?,
        spelling("tokenizer.ggml.bos_token_id")?,
    );
    let merges = {
        // A spelling met twice keeps its later id, as a Python dict would.
        let vocab: HashMap<&str, u32> = spelled
            .iter()
            .enumerate()
            .map(|(id, token)| (token.as_str(), id as u32))
            .collect();
        merges_in_vocabulary_order(&vocab)
    };
    let vocab: Vocab = spelled
        .into_iter()
        .enumerate()
        .map(|(id, token)| (token, id as u32))
        .collect();
    let bos = vocab[&bos_token];
    let bpe = BPE::builder()
        .vocab_and_merges(vocab, merges)
        .unk_token(unknown)
        .fuse_unk(true)
        .byte_fallback(true)
        .build()
        .map_err(|e| e.to_string())?;
    let mut tokenizer = Tokenizer::new(bpe);
    tokenizer
        .with_normalizer(Some(Replace::new(" ", SPACE).map_err(|e| e.to_string())?))
        .map_err(|e| e.to_string())?;
    tokenizer.with_pre_tokenizer(Some(
        Split::new(
            SplitPattern::String(" ".into()),
            SplitDelimiterBehavior::MergedWithPrevious,
            false,
        )
        .map_err(|e| e.to_string())?,
    ));
    tokenizer.with_decoder(Some(Sequence::new(vec![
        DecoderWrapper::Replace(Replace::new(SPACE, " ").map_err(|e| e.to_string())?),
        DecoderWrapper::ByteFallback(ByteFallback::new()),
        DecoderWrapper::Fuse(Fuse::new()),
    ])));
    let adds_bos = content
        .metadata
        .get("tokenizer.ggml.add_bos_token")
        .and_then(|v| v.to_bool().ok())
        .unwrap_or(true);
    if adds_bos {
        tokenizer.with_post_processor(Some(
            TemplateProcessing::builder()
                .try_single(format!("{bos_token} $A"))
                .map_err(|e| e.to_string())?
                .special_tokens(vec![(bos_token.as_str(), bos)])
                .build()
                .map_err(|e| e.to_string())?,
        ));
    }
    tokenizer
        .add_special_tokens(control)
        .and_then(|_| tokenizer.add_tokens(user_defined))
        .map_err(|e| e.to_string())?;
    Ok(tokenizer)
}

/// The merges a vocabulary implies: every token cut in two where both
/// halves are tokens too, the earlier token's merges first, and a token's
/// cuts with the longer left half first (transformers' `generate_merges`
/// ordering).
fn merges_in_vocabulary_order(vocab: &HashMap<&str, u32>) -> Vec<(String, String)> {
    let mut by_id: Vec<(&str, u32)> = vocab.iter().map(|(t, &id)| (*t, id)).collect();
    by_id.sort_unstable_by_key(|&(_, id)| id);
    let mut merges = Vec::new();
    for (token, _) in by_id {
        let cuts: Vec<usize> = token.char_indices().map(|(at, _)| at).skip(1).collect();
        for &at in cuts.iter().rev() {
            let (left, right) = token.split_at(at);
            if vocab.contains_key(left) && vocab.contains_key(right) {
                merges.push((left.to_string(), right.to_string()));
            }
        }
    }
    merges
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_follow_the_vocabulary_then_the_longer_left_half() {
        let vocab: HashMap<&str, u32> = [("a", 0), ("b", 1), ("ab", 2), ("abb", 3), ("bb", 4)]
            .into_iter()
            .collect();
        let merges = merges_in_vocabulary_order(&vocab);
        let pairs: Vec<(&str, &str)> = merges
            .iter()
            .map(|(l, r)| (l.as_str(), r.as_str()))
            .collect();
        assert_eq!(
            pairs,
            [("a", "b"), ("ab", "b"), ("a", "bb"), ("b", "b")],
            "ab (2), then abb's cuts longest left first (3), then bb (4)"
        );
    }
}
