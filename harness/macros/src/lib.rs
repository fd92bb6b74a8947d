//! Attribute macros that register trials with `gymfleet-harness`.
//!
//! Use them through the harness crate (`#[gymfleet_harness::test]`,
//! `#[gymfleet_harness::scenarios]`), which re-exports them; the expansion
//! names only paths under `::gymfleet_harness::__private`.

use proc_macro::TokenStream;
use proc_macro2::{Span, TokenStream as TokenStream2};
use quote::{format_ident, quote};
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::{Expr, ExprLit, ItemFn, Lit, LitStr, Meta, Token};

/// Registers a function as a trial of the harness.
///
/// The function takes no arguments, may be `async`, and returns `()`,
/// `Result<(), E>` or `Result<Completion, E>` for any `E: Debug`.
///
/// Options, comma-separated:
/// - `ignore` or `ignore = "reason"`: listed as ignored;
/// - `requires_env = "VAR"`: listed as ignored unless `VAR` is set and not
///   empty, for slow or real-server tests;
/// - `start_paused` (async only): the tokio clock starts paused.
#[proc_macro_attribute]
pub fn test(args: TokenStream, item: TokenStream) -> TokenStream {
    let options = syn::parse_macro_input!(args as TestOptions);
    let function = syn::parse_macro_input!(item as ItemFn);
    expand_test(options, function)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

/// Registers the function that runs every scenario file of the suite.
///
/// The function takes `&std::path::Path` and returns `Result<(), E>` for
/// any `E: Debug`. `kind = "parse-only"` (or any other word) is shown in
/// each scenario trial's listed name as `[kind]`.
#[proc_macro_attribute]
pub fn scenarios(args: TokenStream, item: TokenStream) -> TokenStream {
    let options = syn::parse_macro_input!(args as ScenarioOptions);
    let function = syn::parse_macro_input!(item as ItemFn);
    expand_scenarios(options, function)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

struct TestOptions {
    ignore: Option<Option<LitStr>>,
    requires_env: Option<LitStr>,
    start_paused: bool,
}

impl Parse for TestOptions {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let mut options = TestOptions {
            ignore: None,
            requires_env: None,
            start_paused: false,
        };
        for meta in Punctuated::<Meta, Token![,]>::parse_terminated(input)? {
            match &meta {
                Meta::Path(path) if path.is_ident("ignore") => options.ignore = Some(None),
                Meta::Path(path) if path.is_ident("start_paused") => options.start_paused = true,
                Meta::NameValue(pair) if pair.path.is_ident("ignore") => {
                    options.ignore = Some(Some(string_value(&pair.value)?));
                }
                Meta::NameValue(pair) if pair.path.is_ident("requires_env") => {
                    let variable = string_value(&pair.value)?;
                    if variable.value().is_empty() {
                        return Err(syn::Error::new_spanned(variable, "`requires_env` is empty"));
                    }
                    options.requires_env = Some(variable);
                }
                _ => {
                    return Err(syn::Error::new_spanned(
                        meta,
                        "unknown option: expected `ignore`, `ignore = \"reason\"`, \
                         `requires_env = \"VAR\"` or `start_paused`",
                    ));
                }
            }
        }
        Ok(options)
    }
}

struct ScenarioOptions {
    kind: Option<LitStr>,
}

impl Parse for ScenarioOptions {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let mut options = ScenarioOptions { kind: None };
        for meta in Punctuated::<Meta, Token![,]>::parse_terminated(input)? {
            match &meta {
                Meta::NameValue(pair) if pair.path.is_ident("kind") => {
                    options.kind = Some(string_value(&pair.value)?);
                }
                _ => {
                    return Err(syn::Error::new_spanned(
                        meta,
                        "unknown option: expected `kind = \"...\"`",
                    ));
                }
            }
        }
        Ok(options)
    }
}

fn expand_test(options: TestOptions, function: ItemFn) -> syn::Result<TokenStream2> {
    let signature = &function.sig;
    if !signature.inputs.is_empty() {
        return Err(syn::Error::new_spanned(
            &signature.inputs,
            "a trial takes no arguments",
        ));
    }
    if !signature.generics.params.is_empty() {
        return Err(syn::Error::new_spanned(
            &signature.generics,
            "a trial cannot be generic",
        ));
    }
    let is_async = signature.asyncness.is_some();
    if options.start_paused && !is_async {
        return Err(syn::Error::new(
            Span::call_site(),
            "`start_paused` needs an `async fn`: only async trials run on a tokio clock",
        ));
    }

    let private = quote!(::gymfleet_harness::__private);
    let ident = &signature.ident;
    let name = ident.to_string();
    let registration = format_ident!("__GYMFLEET_HARNESS_TRIAL_{}", name.to_uppercase());
    let ignore = match (&options.ignore, &options.requires_env) {
        (Some(_), Some(_)) => {
            return Err(syn::Error::new(
                Span::call_site(),
                "`ignore` and `requires_env` exclude each other",
            ));
        }
        (Some(Some(reason)), None) => quote!(#private::Ignore::Always(Some(#reason))),
        (Some(None), None) => quote!(#private::Ignore::Always(None)),
        (None, Some(variable)) => quote!(#private::Ignore::UnlessEnv(#variable)),
        (None, None) => quote!(#private::Ignore::Never),
    };
    let body = if is_async {
        let start_paused = options.start_paused;
        quote! {
            #private::Body::Async {
                start_paused: #start_paused,
                future: || ::std::boxed::Box::pin(async {
                    #private::TestResult::into_verdict(#ident().await)
                }),
            }
        }
    } else {
        quote!(#private::Body::Sync(|| #private::TestResult::into_verdict(#ident())))
    };

    Ok(quote! {
        #function

        #[#private::linkme::distributed_slice(#private::TESTS)]
        #[linkme(crate = #private::linkme)]
        #[doc(hidden)]
        static #registration: #private::Test = #private::Test {
            function: #name,
            module_path: ::core::module_path!(),
            file: ::core::file!(),
            line: ::core::line!(),
            ignore: #ignore,
            body: #body,
        };
    })
}

fn expand_scenarios(options: ScenarioOptions, function: ItemFn) -> syn::Result<TokenStream2> {
    let signature = &function.sig;
    if signature.inputs.len() != 1 || signature.asyncness.is_some() {
        return Err(syn::Error::new_spanned(
            signature,
            "a scenario runner is a plain `fn(&std::path::Path) -> Result<(), E>`",
        ));
    }

    let private = quote!(::gymfleet_harness::__private);
    let ident = &signature.ident;
    let kind = match &options.kind {
        Some(kind) => quote!(Some(#kind)),
        None => quote!(None),
    };
    let registration = format_ident!(
        "__GYMFLEET_HARNESS_SCENARIOS_{}",
        ident.to_string().to_uppercase()
    );

    Ok(quote! {
        #function

        #[#private::linkme::distributed_slice(#private::SCENARIO_RUNNERS)]
        #[linkme(crate = #private::linkme)]
        #[doc(hidden)]
        static #registration: #private::ScenarioRunner = #private::ScenarioRunner {
            module_path: ::core::module_path!(),
            kind: #kind,
            run: |path| #private::TestResult::into_verdict(#ident(path)),
        };
    })
}

fn string_value(expr: &Expr) -> syn::Result<LitStr> {
    match expr {
        Expr::Lit(ExprLit {
            lit: Lit::Str(string),
            ..
        }) => Ok(string.clone()),
        other => Err(syn::Error::new_spanned(other, "expected a string literal")),
    }
}
