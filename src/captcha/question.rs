//! The arithmetic question behind a captcha.

use rand::{Rng, RngExt};

/// One captcha's question: what is drawn (`text`) and what must be answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Question {
    /// What the image shows, e.g. `"7 + 3 × 2 = ?"`; only characters the font
    /// covers (digits, `+`, `-`, `×`, `=`, `?`, space).
    pub text: String,
    /// The value of the expression with the usual precedence (`×` before `+`
    /// and `-`); may be zero or negative.
    pub answer: i64,
}

/// Operands are single digits: one glyph each, and the sum is easy for a
/// person in a hurry.
const OPERAND_MIN: i64 = 1;
const OPERAND_MAX: i64 = 9;

/// Draws a question of one of five shapes: `a + b`, `a - b`, `a × b`,
/// `a + b × c`, `a × b - c`.
///
/// The mixed shapes are there so that reading the digits left to right and
/// folding them is wrong: the answer needs precedence.
pub fn generate(rng: &mut impl Rng) -> Question {
    let mut operand = || rng.random_range(OPERAND_MIN..=OPERAND_MAX);
    let (a, b, c) = (operand(), operand(), operand());
    let (text, answer) = match rng.random_range(0..5u8) {
        0 => (format!("{a} + {b}"), a + b),
        1 => (format!("{a} - {b}"), a - b),
        2 => (format!("{a} × {b}"), a * b),
        3 => (format!("{a} + {b} × {c}"), a + b * c),
        _ => (format!("{a} × {b} - {c}"), a * b - c),
    };
    Question { text: text + " = ?", answer }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::SmallRng;

    /// Evaluates a question's text without sharing any code with `generate`:
    /// products are folded first, then the terms are summed.
    fn evaluate(text: &str) -> i64 {
        let expr = text.strip_suffix(" = ?").unwrap_or_else(|| panic!("{text:?} does not end with \" = ?\""));
        let tokens: Vec<&str> = expr.split(' ').collect();
        assert!(tokens.len() % 2 == 1, "{text:?} does not alternate operands and operators");
        let operand = |token: &str| -> i64 {
            let n: i64 = token.parse().unwrap_or_else(|_| panic!("{token:?} in {text:?} is not a number"));
            assert!((1..=9).contains(&n), "operand {n} in {text:?} is outside 1..=9");
            n
        };
        let (mut sum, mut sign, mut product) = (0, 1, operand(tokens[0]));
        for pair in tokens[1..].chunks(2) {
            let rhs = operand(pair[1]);
            match pair[0] {
                "×" => product *= rhs,
                op @ ("+" | "-") => {
                    sum += sign * product;
                    sign = if op == "+" { 1 } else { -1 };
                    product = rhs;
                }
                op => panic!("unknown operator {op:?} in {text:?}"),
            }
        }
        sum + sign * product
    }

    #[test]
    fn evaluator_follows_precedence() {
        assert_eq!(evaluate("7 + 3 × 2 = ?"), 13);
        assert_eq!(evaluate("2 × 3 - 9 = ?"), -3);
        assert_eq!(evaluate("4 - 4 = ?"), 0);
    }

    #[test]
    fn answers_match_an_independent_evaluation() {
        let mut rng = SmallRng::seed_from_u64(0x5eed);
        for _ in 0..10_000 {
            let q = generate(&mut rng);
            assert_eq!(q.answer, evaluate(&q.text), "{q:?}");
        }
    }

    #[test]
    fn every_shape_and_sign_occurs() {
        let mut rng = SmallRng::seed_from_u64(7);
        let questions: Vec<Question> = (0..1_000).map(|_| generate(&mut rng)).collect();
        for op_count in [1, 2] {
            assert!(questions.iter().any(|q| q.text.matches(['+', '-', '×']).count() == op_count));
        }
        assert!(questions.iter().any(|q| q.answer < 0));
        assert!(questions.iter().any(|q| q.answer == 0));
        assert!(questions.iter().any(|q| q.text.contains(" + ") && q.text.contains(" × ")));
        assert!(questions.iter().any(|q| q.text.contains(" × ") && q.text.contains(" - ")));
    }
}
