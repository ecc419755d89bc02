//! The syntax of `derive` expressions, checked when the DAG file loads.
//!
//! The expressions run on polars' SQL engine, which parses them with `sqlparser`'s generic dialect; parsing them the
//! same way here reports a typo with the file's line and column before any run, without the data engine. Whether a
//! function or column exists is only known when the task runs on its data.

use sqlparser::dialect::GenericDialect;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::Token;

/// `Ok` when `expression` is one SQL expression, else what is wrong with it.
pub fn check_sql_expression(expression: &str) -> Result<(), String> {
    let mut parser = Parser::new(&GenericDialect).try_with_sql(expression).map_err(|e| e.to_string())?;
    parser.parse_expr().map_err(|e| e.to_string())?;
    match parser.peek_token().token {
        Token::EOF => Ok(()),
        extra => Err(format!("unexpected {extra} after the expression")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expressions_and_typos() {
        for ok in [
            "bill_length_mm / bill_depth_mm",
            "body_mass_g > 4500",
            "CASE WHEN sex = 'male' THEN 1 ELSE 0 END",
            "coalesce(a, 0) + CAST(b AS DOUBLE)",
            "upper(\"Island Name\")",
        ] {
            assert_eq!(check_sql_expression(ok), Ok(()), "{ok}");
        }
        for bad in ["bill_length_mm / ", "a +* b", "a b", "SELECT a FROM t", ""] {
            assert!(check_sql_expression(bad).is_err(), "{bad}");
        }
    }
}
